"""The mission, scenario by scenario, on whatever rig this run has: the virtual one in CI, a bench by hand.

The bodies use the rig's actions and what the platform received, never the backend: they run unchanged on both.
A scenario that needs something the rig lacks (a simulated panel to put into fire, a loop-back wired as a door)
skips, saying what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import raise_inhibits
from gateway.safety.bollards.supervisor import Command, Rule
from gateway.store.outbox import PRIORITY_ALARM
from hil.rig import PREFIX, Rig
from simulators.bollard import BollardState


def event(kind: str, device: str, point: str | None = None, state: str | None = None) -> Any:
    """Matches an event of class `kind` from `device` (at `point`, in `state`, when given)."""

    def match(topic: str, p: dict[str, Any]) -> bool:
        return (
            topic == f"{PREFIX}/event/{kind}"
            and p["device"] == device
            and (point is None or p["point"] == point)
            and (state is None or p["state"] == state)
        )

    return match


def online(device: str) -> Any:
    def match(topic: str, p: dict[str, Any]) -> bool:
        return topic == f"{PREFIX}/state/{device}" and p["online"] is True

    return match


async def test_hil_fire_reaches_the_platform(rig: Rig, tmp_path: Path) -> None:
    """A fire at the panel, polled over the rig's line, reaches the platform as an alarm, on contract."""
    panel = rig.simulated("fire_panel")
    async with rig.site(tmp_path) as site:
        await site.platform.wait_for(online(panel))
        site.fire(panel, 102)
        _, fire = await site.platform.wait_for(event("fire", panel, state="raised"))
        assert (fire["severity"], fire["value"]) == ("alarm", True)
        await site.platform.wait_for(
            lambda t, p: t == f"{PREFIX}/state/{panel}" and p["points"]["fire"]["value"] is True
        )
        _, book = await site.platform.wait_for(lambda t, p: t == f"{PREFIX}/alarms" and bool(p["alarms"]))
        assert any(a["device"] == panel and a["active"] for a in book["alarms"])
    assert site.platform.invalid == 0


async def test_hil_door_forced_during_closed_campus_hours(rig: Rig, tmp_path: Path) -> None:
    """A door armed by the closed-campus schedule, opened with no exit request: forced open, an alarm; closing it
    clears it. The contact is the rig's loop-back: the gateway reads a real (or mock) input pin."""
    door = rig.loopback("door")
    async with rig.site(tmp_path) as site:
        await site.platform.wait_for(
            lambda t, p: t == f"{PREFIX}/event/bollard" and p["point"] == "closed_campus" and p["state"] == "raised"
        )
        site.open_door(door)
        await site.platform.wait_for(event("door", door, "open", "raised"))
        _, forced = await site.platform.wait_for(event("door", door, "forced_open", "raised"))
        assert forced["severity"] == "alarm"
        assert "强行" in forced["detail"]["text_zh"]
        site.close_door(door)
        await site.platform.wait_for(event("door", door, "forced_open", "cleared"))
        await site.platform.wait_for(event("door", door, "open", "cleared"))
    assert site.platform.invalid == 0


async def test_hil_raise_blocked_by_a_vehicle(rig: Rig, tmp_path: Path) -> None:
    """A vehicle on the loop: the guard's raise is refused by the interlock and the platform is told why; the
    bollard does not move. Once the vehicle is gone the same raise goes through and the bollard comes up."""
    lane = rig.lane()
    async with rig.site(tmp_path) as site:
        gw = site.gateway
        supervisor = gw.bollards.supervisors[lane]
        site.block_loop(lane)
        await site.until(lambda: supervisor.sensors.view(False).loop_occupied is True)

        refused = gw.bollards.request(lane, Command.RAISE, Authority.GUARD)
        assert (refused.accepted, refused.rule) == (False, Rule.INTERLOCK)
        _, told = await site.platform.wait_for(
            lambda t, p: t == f"{PREFIX}/event/bollard" and p.get("detail", {}).get("rule") == "interlock"
        )
        assert told["detail"]["reasons"] == "loop_occupied"
        assert "地感线圈有车" in told["detail"]["text_zh"]
        assert site.bollard(lane).state is BollardState.DOWN

        site.block_loop(lane, occupied=False)
        await site.until(
            lambda: (
                raise_inhibits(supervisor.sensors.view(False), gw.clock.mono(), supervisor.settings.interlocks) == []
            )
        )
        assert gw.bollards.request(lane, Command.RAISE, Authority.GUARD).accepted
        await site.until(lambda: site.bollard(lane).state is BollardState.UP, 20)
    assert site.platform.invalid == 0


async def test_hil_dead_device_on_a_live_line(rig: Rig, tmp_path: Path) -> None:
    """A detector dies on the panel's RS-485 line: the platform hears it go offline, the panel's fire still gets
    through on the same line, and the detector is back online when it answers again."""
    panel = rig.simulated("fire_panel")
    detector = rig.simulated("smoke_detector", line_of=panel)
    async with rig.site(tmp_path) as site:
        await site.platform.wait_for(online(detector))
        site.kill(detector)
        _, gone = await site.platform.wait_for(event("offline", detector, state="raised"))
        assert gone["severity"] == "warning"
        site.fire(panel, 3)
        await site.platform.wait_for(event("fire", panel, state="raised"))
        site.kill(detector, dead=False)
        await site.platform.wait_for(event("online", detector))
    unknown = [
        r
        for t, p in site.platform.received
        if t == f"{PREFIX}/telemetry"
        for r in p["readings"]
        if r["device"] == detector and r["point"] == "fire_alarm" and r["quality"] == "offline"
    ]
    assert unknown, "while dead, its fire point was reported unknown, not 'no fire'"
    assert unknown[0]["value"] is None
    assert site.platform.invalid == 0


async def test_hil_broker_outage_loses_nothing(rig: Rig, tmp_path: Path) -> None:
    """The broker goes away mid-stream and a fire comes during the outage: once it is back, every sequence number
    the gateway committed has reached the platform (or was declared a gap), the fire among them."""
    detector = rig.simulated("smoke_detector")
    panel = rig.simulated("fire_panel")
    async with rig.site(tmp_path) as site:
        gw = site.gateway
        ledger = site.platform.ledger
        with site.smoke_wave(detector):
            await site.until(lambda: len(ledger.received) >= 20)
            site.cut_broker()
            down_at = gw.outbox.last_seq()
            await site.until(lambda: gw.outbox.last_seq() >= down_at + 20)  # still committing, into the outbox
            site.fire(panel, 9)
            await site.until(lambda: bool(gw.outbox.fetch(PRIORITY_ALARM, 0, 1)))
            held = gw.outbox.depth()
            site.restore_broker()
            await site.platform.wait_for(event("fire", panel, state="raised"))
        await site.until(lambda: gw.outbox.depth() == 0 and site.platform.ledger.mark >= gw.outbox.last_seq())
        last = gw.outbox.last_seq()
        assert gw.uplink.connections >= 2
    assert held >= 20
    lost = [s for s in range(1, last + 1) if s not in ledger.received and not ledger.declared_gap(s)]
    assert lost == []
    assert [s for s in ledger.received if s > last] == []
    assert site.platform.invalid == 0
