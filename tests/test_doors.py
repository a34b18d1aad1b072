"""Forced-open and held-open door alarms (R11) in a running gateway, on simulated contacts; armed always, or by
the closed-campus schedule; and lockdown from the gate house's key switch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.contacts import SimContact, contact_pin_factory
from tests.gateway_harness import config_text, make_config, running_gateway

PREFIX = "campus/v1/test-school/gw-1"


def door_site(tmp_path: Path, broker_url: str, armed: str) -> str:
    door = {"id": "door-main", "pin": 17, "kind": "door", "contact": "NC", "debounce_ms": 10,
            "held_open_s": 0.6, "held_prewarn_s": 0.3, "rex_window_s": 1.0}  # fmt: skip
    if armed != "schedule":
        door["armed"] = armed  # "schedule" is the default; said explicitly it needs a [schedule] table
    rex = {"id": "rex-main", "pin": 18, "kind": "rex", "door": "door-main", "contact": "NO", "debounce_ms": 10}
    return config_text(tmp_path / "state", broker_url, [], [], [door, rex])


def door_event(point: str, state: str) -> Any:
    def match(topic: str, p: dict[str, Any]) -> bool:
        return topic == f"{PREFIX}/event/door" and p["point"] == point and p["state"] == state

    return match


async def test_door_forced_and_held_open_when_armed_always(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/door")
    factory = contact_pin_factory()
    door = SimContact(factory, 17, "NC")
    rex = SimContact(factory, 18, "NO")
    async with running_gateway(make_config(door_site(tmp_path, broker.url, "always")), pin_factory=factory):
        # Someone presses the exit button, then opens the door: a normal exit, no alarm.
        rex.set(True)
        await asyncio.sleep(0.05)
        rex.set(False)
        door.set(True)
        _, prewarn = await sub.wait_for(door_event("held_open_prewarn", "raised"))
        assert prewarn["severity"] == "info"
        _, held = await sub.wait_for(door_event("held_open", "raised"))
        assert held["severity"] == "warning"
        assert held["detail"]["open_s"] >= 0.6
        assert "门长时间未关闭" in held["detail"]["text_zh"]
        door.set(False)
        await sub.wait_for(door_event("held_open", "cleared"))
        await sub.wait_for(door_event("held_open_prewarn", "cleared"))
        assert not any(p["point"] == "forced_open" for _, p in sub.messages)

        # No exit button: forced open, an alarm at once; closing it clears it.
        await asyncio.sleep(1.1)  # the earlier press is outside the window now
        door.set(True)
        _, forced = await sub.wait_for(door_event("forced_open", "raised"))
        assert forced["severity"] == "alarm"
        door.set(False)
        await sub.wait_for(door_event("forced_open", "cleared"))
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_door_armed_by_the_schedule_only(tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any) -> None:
    """Out of school hours an open door is just an open door; during them it is forced, and one already open
    when the school day begins is timed as held open from when it opened."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/door")
    factory = contact_pin_factory()
    door = SimContact(factory, 17, "NC")
    async with running_gateway(make_config(door_site(tmp_path, broker.url, "schedule")), pin_factory=factory) as gw:
        gw.site_mode.apply_schedule(False)
        door.set(True)
        await sub.wait_for(lambda _t, p: p["point"] == "open" and p["state"] == "raised")
        await asyncio.sleep(0.8)
        assert not any(p["point"] != "open" for _, p in sub.messages), "not armed out of hours"
        gw.site_mode.apply_schedule(True)
        await sub.wait_for(door_event("held_open", "raised"), timeout_s=0.5)  # open for 0.8 s already
        door.set(False)
        await sub.wait_for(door_event("held_open", "cleared"))
        door.set(True)
        await sub.wait_for(door_event("forced_open", "raised"))
        gw.site_mode.apply_schedule(None)  # the clock lost its synchronisation: not armed by the schedule
        door.set(False)
        await sub.wait_for(door_event("forced_open", "cleared"))
        door.set(True)
        await asyncio.sleep(0.8)
        assert [p["point"] for _, p in sub.messages].count("forced_open") == 2, "raised once, cleared once"


async def test_gpio_alarms_raised_before_a_restart_clear_when_found_normal(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A door forced open and a panel's fire relay closed; the gateway stops; both return to normal meanwhile. The
    next start clears both, at the platform and in the alarm book. (The alarm book's own "raised" once took the
    place of the relay's remembered True, and the relay's fire was never cleared.)"""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    relay_cfg = {"id": "fire-relay", "pin": 23, "kind": "fire_relay", "contact": "NO", "debounce_ms": 10}
    text = door_site(tmp_path, broker.url, "always").replace(
        "[[gpio.inputs]]", _table(relay_cfg) + "[[gpio.inputs]]", 1
    )
    cfg = make_config(text)
    factory = contact_pin_factory()
    door, relay = SimContact(factory, 17, "NC"), SimContact(factory, 23, "NO")
    async with running_gateway(cfg, pin_factory=factory):
        door.set(True)
        relay.set(True)
        for source in ("door-main", "fire-relay"):
            await sub.wait_for(lambda t, p, s=source: t.endswith("/event/alarm") and p["device"] == s)
    door.set(False)
    relay.set(False)
    async with running_gateway(cfg, pin_factory=factory):
        await sub.wait_for(door_event("forced_open", "cleared"))
        await sub.wait_for(
            lambda t, p: t.endswith("/event/fire") and p["device"] == "fire-relay" and p["state"] == "cleared"
        )
        for alarm_id in ("door-main.forced_open", "fire-relay.fire"):
            await sub.wait_for(lambda t, p, a=alarm_id: t.endswith("/event/alarm") and p["value"] == "cleared"
                               and p["detail"]["alarm_id"] == a)  # fmt: skip


def _table(values: dict[str, Any]) -> str:
    lines = ["[[gpio.inputs]]"] + [f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _chatter(contact: SimContact, seconds: float, period_s: float) -> int:
    """Toggle a contact every `period_s` for `seconds`, from a thread as gpiozero's own calls back on real pins;
    ends where it began (shut). Returns the edges driven."""
    edges = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end or contact.active:
        contact.set(not contact.active)
        edges += 1
        time.sleep(period_s)
    return edges


async def test_door_chattering_faster_than_its_debounce_is_unstable(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A door contact toggling at about 1 kHz never settles through its 50 ms debounce; its raw edges make it
    unstable: one warning with the count of edges, the point's quality bad, then cleared with the spell's total
    and the point good again once quiet for a window."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    door_cfg = {"id": "door-main", "pin": 17, "kind": "door", "contact": "NC", "debounce_ms": 50,
                "chatter_edges": 200, "chatter_window_s": 0.5, "armed": "never"}  # fmt: skip
    factory = contact_pin_factory()
    door = SimContact(factory, 17, "NC")
    text = config_text(tmp_path / "state", broker.url, [], [], [door_cfg])
    async with running_gateway(make_config(text), pin_factory=factory):
        await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/door-main" and p["points"]["open"]["quality"] == "good")
        edges = await asyncio.to_thread(_chatter, door, 2.0, 0.0005)

        def unstable(state: str) -> Any:
            return lambda t, p: t == f"{PREFIX}/event/maintenance" and p["point"] == "unstable" and p["state"] == state

        _, raised = await sub.wait_for(unstable("raised"))
        assert (raised["device"], raised["detail"]["edges"]) == ("door-main", 201)
        assert raised["detail"]["text_en"] == "input unstable: the contact chatters faster than its debounce"
        assert raised["detail"]["text_zh"] == "输入不稳定: 触点抖动快于去抖时间"
        bad = await sub.wait_for(lambda t, p: t == f"{PREFIX}/telemetry" and any(
            r["device"] == "door-main" and r["quality"] == "bad" for r in p["readings"]))  # fmt: skip
        _, cleared = await sub.wait_for(unstable("cleared"), timeout_s=5.0)
        assert cleared["detail"]["edges"] == edges, "every edge of the spell"
        assert cleared["detail"]["text_en"] == "input stable again"
        await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/door-main" and p["points"]["open"]["quality"] == "good"
                           and p["points"]["open"]["value"] is False)  # fmt: skip
    assert edges > 1000, "about 1 kHz for 2 s"
    assert [p["state"] for t, p in sub.messages if t.endswith("/event/maintenance")] == ["raised", "cleared"]
    for topic, payload in [*sub.messages, bad]:
        validate_message(topic, payload)
