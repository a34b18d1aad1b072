"""The whole path: simulated devices -> drivers -> gateway -> outbox -> real mosquitto -> a platform subscriber."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.contacts import SimContact
from simulators.devices import FirePanelSim, SmokeDetectorSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"


def is_fire(device: str) -> Any:
    def match(topic: str, p: dict[str, Any]) -> bool:
        return topic == f"{PREFIX}/event/fire" and p["device"] == device and p["state"] == "raised"

    return match


@pytest.mark.parametrize("transport", ["tcp", "rtu-pty"])
async def test_e2e_panel_fire_reaches_subscriber(
    transport: str, tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any, pin_factory: Any
) -> None:
    """A fire on the simulated panel arrives at the platform as a fire alarm event, valid per the contract."""
    panel = FirePanelSim()
    door = SimContact(pin_factory, 17, "NC")
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        _bus, endpoint = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        await _bus.__aexit__(None, None, None)  # the gateway opens its own
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "line", **endpoint}],
            [{"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            [{"id": "door-main", "pin": 17, "kind": "door"}],
        )
        async with running_gateway(make_config(text), pin_factory) as gw:
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1" and p["online"])
            panel.alarm_point(102)
            topic, fire = await sub.wait_for(is_fire("facp-1"))
            assert fire["severity"] == "alarm"
            assert fire["value"] is True
            door.set(True)
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/door" and p["state"] == "raised")
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1" and p["points"]["fire"]["value"] is True)
            boot_id = gw.identity.boot_id
    for topic, payload in sub.messages:
        validate_message(topic, payload)
    statuses = [
        (p["state"], p.get("reason")) for t, p in sub.messages if t == f"{PREFIX}/status" and p["boot_id"] == boot_id
    ]
    assert statuses == [("online", None), ("offline", "shutdown")]


async def panel_and_dead_detector(
    tmp_path: Path, broker_url: str, stack: contextlib.AsyncExitStack, **detector: float
) -> tuple[FirePanelSim, str]:
    """A panel (unit 1) and a silent detector (unit 12) on one RS-485 pty line: the panel and the site's config."""
    panel = FirePanelSim()
    dead = SmokeDetectorSim()
    dead.faults.silent = True
    bus, endpoint = await open_sim_bus("rtu-pty", {1: panel, 12: dead}, tmp_path, stack)
    await bus.__aexit__(None, None, None)
    text = config_text(
        tmp_path / "state",
        broker_url,
        [{"id": "line", **endpoint, "timeout_ms": 200, "retries": 2}],
        [
            {"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1},
            {"id": "smoke-12", "bus": "line", "unit": 12, "profile": "smoke_detector", "poll_interval_s": 0.1}
            | detector,
        ],
    )
    return panel, text


async def test_e2e_dead_detector_does_not_delay_panel_polls(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """With a dead detector on the same RS-485 line, the panel keeps its polls and its fire still gets through.

    Once offline, the dead detector costs at most one timeout per back-off period instead of three per poll.
    """
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        panel, text = await panel_and_dead_detector(
            tmp_path, broker.url, stack, offline_after_polls=2, offline_after_s=0, backoff_max_s=1.6
        )
        async with running_gateway(make_config(text)) as gw:
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/offline" and p["device"] == "smoke-12")
            poller = gw.pollers["line"]
            panel_entry, dead_entry = poller.devices
            panel_before, dead_before = panel_entry.polls, gw.buses["line"].stats[12].requests
            # Wait for 40 more panel polls (4 s of schedule at 0.1 s).
            await watch_gateway(gw).until(lambda: panel_entry.polls >= panel_before + 40, 30)
            dead_requests = gw.buses["line"].stats[12].requests - dead_before
            # Back-off 0.2, 0.4, 0.8, 1.6, 1.6 s...: about 4 tries in 4 s, each a single request, never 3 per poll.
            assert dead_requests <= 6, dead_requests
            assert dead_entry.attempts_offline >= 1
            panel.alarm_point(3)
            await sub.wait_for(is_fire("facp-1"))
    fire_unknown = [
        p
        for t, p in sub.messages
        if t == f"{PREFIX}/telemetry"
        for p in p["readings"]
        if p["device"] == "smoke-12" and p["point"] == "fire_alarm"
    ]
    assert fire_unknown[-1]["quality"] == "offline"
    assert fire_unknown[-1]["value"] is None


@pytest.mark.slow
async def test_e2e_broker_killed_and_restarted_loses_no_reading(tmp_path: Path, subscriber_factory: Any) -> None:
    """kill -9 of the broker mid-stream: every committed sequence number still reaches the subscriber."""
    own = PrivateBroker(tmp_path / "broker")
    own.start()
    try:
        det = SmokeDetectorSim()
        sub = await subscriber_factory(own.url, f"{PREFIX}/#", client_id="platform-1")
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {1: det}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            text = config_text(
                tmp_path / "state",
                own.url,
                [{"id": "tcp-1", **endpoint}],
                [{"id": "smoke-1", "bus": "tcp-1", "unit": 1, "profile": "smoke_detector", "poll_interval_s": 0.02}],
            )
            async with running_gateway(make_config(text)) as gw:
                signal = watch_gateway(gw)
                sub.listeners.append(signal)

                def received() -> int:
                    return len(set(sub.seqs()))

                async def smoke_wave() -> None:
                    level = 0
                    while True:
                        level = (level + 17) % 300
                        det.set_smoke(level / 100)
                        await asyncio.sleep(0.01)

                wave = asyncio.create_task(smoke_wave())
                try:
                    await signal.until(lambda: received() >= 200)
                    own.kill()
                    down_at = gw.outbox.last_seq()
                    await signal.until(lambda: gw.outbox.last_seq() >= down_at + 100)
                    own.start()
                    await signal.until(lambda: received() >= down_at + 300)
                finally:
                    wave.cancel()
                await signal.until(lambda: gw.outbox.depth() == 0 and received() >= gw.outbox.last_seq())
                last = gw.outbox.last_seq()
                assert gw.uplink.connections >= 2
        seen = set(sub.seqs())
        missing = sorted(set(range(1, last + 1)) - seen)
        assert missing == []
        assert max(seen) == last
    finally:
        own.stop()


async def test_e2e_alarm_published_ahead_of_backlog(tmp_path: Path, subscriber_factory: Any) -> None:
    """After an outage, the fire committed last is the first thing the platform receives, before the backlog."""
    own = PrivateBroker(tmp_path / "broker")
    own.start()
    try:
        panel = FirePanelSim()
        sub = await subscriber_factory(own.url, f"{PREFIX}/#", client_id="platform-2")
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {1: panel}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            text = config_text(
                tmp_path / "state",
                own.url,
                [{"id": "tcp-1", **endpoint}],
                [{"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.01}],
                mqtt_extra="batch_max_readings = 50\n",
            )
            async with running_gateway(make_config(text)) as gw:
                signal = watch_gateway(gw)
                await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1")
                own.kill()

                async def churn() -> None:
                    # The panel's event counter moves on every poll: telemetry piles up while the link is down.
                    while True:
                        panel.set(supervisory=False)
                        await asyncio.sleep(0.01)

                load = asyncio.create_task(churn())
                try:
                    await signal.until(lambda: gw.outbox.depth() >= 300)
                finally:
                    load.cancel()
                # Rows the broker acknowledged before it died are gone from the outbox; the broker may still
                # owe them to the platform's persistent session and deliver them first when it is back.
                owed_by_broker_below = min(
                    r.seq for p in (PRIORITY_EVENT, PRIORITY_TELEMETRY) for r in gw.outbox.fetch(p, 0, 1)
                )
                panel.alarm_point(9)
                await signal.until(lambda: bool(gw.outbox.fetch(PRIORITY_ALARM, 0, 1)))
                backlog = gw.outbox.depth()
                before = len(sub.messages)
                own.start()
                await sub.wait_for(is_fire("facp-1"))
                await signal.until(lambda: gw.outbox.depth() == 0)
        after = [(t, p) for t, p in sub.messages[before:] if "seq" in p or "readings" in p]
        fire_at = next(i for i, (t, _p) in enumerate(after) if t == f"{PREFIX}/event/fire")
        first = after[fire_at][1]
        ahead = [r["seq"] for _t, p in after[:fire_at] for r in p.get("readings", [p])]
        # Nothing the gateway still held went out before the fire: only what the broker already had.
        assert all(s < owed_by_broker_below for s in ahead), (ahead, owed_by_broker_below)
        assert backlog >= 300
        telemetry_seqs = [r["seq"] for _t, p in after if "readings" in p for r in p["readings"]]
        assert first["seq"] > min(telemetry_seqs)  # committed after the backlog, delivered before it
    finally:
        own.stop()


async def test_e2e_what_ended_while_the_gateway_was_down_is_cleared(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any, pin_factory: Any
) -> None:
    """A fire and an open door reported before a restart, both over after it: the platform hears both 'cleared'."""
    panel = FirePanelSim()
    door = SimContact(pin_factory, 17, "NC")
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        _bus, endpoint = await open_sim_bus("tcp", {1: panel}, tmp_path, stack)
        await _bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "line", **endpoint}],
            [{"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            [{"id": "door-main", "pin": 17, "kind": "door"}],
        )
        async with running_gateway(make_config(text), pin_factory):
            panel.alarm_point(7)
            door.set(True)
            await sub.wait_for(is_fire("facp-1"))
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/door" and p["state"] == "raised")
        panel.clear_point(7)
        assert panel.reset()
        door.set(False)
        seen = len(sub.messages)
        async with running_gateway(make_config(text), pin_factory):
            await sub.wait_for(
                lambda t, p: t == f"{PREFIX}/event/fire" and p["state"] == "cleared" and len(sub.messages) > seen
            )
            await sub.wait_for(
                lambda t, p: t == f"{PREFIX}/event/door" and p["state"] == "cleared" and len(sub.messages) > seen
            )
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_e2e_dead_detector_backs_off_before_it_counts_as_offline(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """From the first failed poll, a dead detector is tried once per back-off, not three times every poll.

    The offline verdict takes `offline_after_s` (10 s by default); the bus must not pay retries all that time.
    Counted from the start: the panel's first 30 polls, and what the dead detector cost meanwhile.
    """
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        panel, text = await panel_and_dead_detector(tmp_path, broker.url, stack)
        async with running_gateway(make_config(text)) as gw:
            panel_entry, dead_entry = gw.pollers["line"].devices
            await watch_gateway(gw).until(lambda: panel_entry.polls >= 30, 30)
            dead_requests = gw.buses["line"].stats[12].requests
            # One poll with its 3 attempts, then single tries 0.2, 0.4, 0.8, 1.6 s apart: about 7 in 3 s of polls.
            # Retrying every poll would cost 3 requests per panel poll: 90.
            assert dead_requests <= 10, dead_requests
            assert dead_entry.tracker.online is not False  # not yet offline: the back-off came first
            assert dead_entry.backoff_s > 0
            panel.alarm_point(3)
            await sub.wait_for(is_fire("facp-1"))
