"""The alarm book (issue 6): lifecycle, stable ids, the fire latch, re-notification, restarts; units on a real
outbox and recorder, then end to end over MQTT with simulated devices, the guard's CLI and a signed command."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from drivers.profile import PointValue, Quality
from gateway.base.clock import Clock
from gateway.base.contract import Topics
from gateway.safety.alarms import AlarmBook
from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_EVENT, Outbox
from gateway.store.recorder import Recorder
from gateway.store.records import Event, EventState, Severity, Stamp
from gateway.store.stateboard import StateBoard
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.contacts import SimContact, contact_pin_factory
from simulators.devices import FirePanelSim, SmokeDetectorSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"


class WallClock(Clock):
    """Wall time moved by the test."""

    wall: ClassVar[int] = 1_790_000_000_000

    @staticmethod
    def wall_ms() -> int:
        return WallClock.wall


class Book:
    """An alarm book on a real outbox; `events` are the alarm lifecycle events it recorded, oldest first."""

    def __init__(self, state: Path, panels: frozenset[str] = frozenset(), renotify_s: float = 300.0) -> None:
        self.topics = Topics("s1", "g1")
        self.outbox = Outbox(state / "outbox.db")
        self.board = StateBoard(self.topics)
        self.recorder = Recorder(self.outbox, self.topics, self.board, WallClock(assume_synced=True))
        self.book = AlarmBook(self.recorder, self.topics, WallClock(assume_synced=True), state / "alarms.json",
                              panels, renotify_s)  # fmt: skip

    def event(self, cls: str, state: EventState, device: str, point: str, value: Any = True,
              severity: Severity = "warning") -> None:  # fmt: skip
        stamp = Stamp(WallClock.wall, 0.0, True)
        self.recorder.record([], [Event(cls, severity, state, device, point, value, Quality.GOOD, stamp)])
        self.recorder.flush()

    def lifecycle(self) -> list[tuple[str, str]]:
        """(alarm id, what) of every alarm event so far."""
        self.recorder.flush()
        rows = self.outbox.fetch(PRIORITY_ALARM, 0, 10_000) + self.outbox.fetch(PRIORITY_EVENT, 0, 10_000)
        events = sorted((json.loads(r.body) | {"seq": r.seq} for r in rows), key=lambda e: e["seq"])
        return [(e["detail"]["alarm_id"], e["value"]) for e in events if e["class"] == "alarm"]

    def close(self) -> None:
        self.outbox.close()


def test_alarms_raised_acknowledged_cleared_closed(tmp_path: Path) -> None:
    b = Book(tmp_path)
    b.event("fault", "raised", "facp-1", "fault")
    assert b.book.alarms["facp-1.fault"].priority == 3
    assert b.book.ack("facp-1.fault", "wang", "guard") == (True, "acknowledged")
    b.event("fault", "cleared", "facp-1", "fault", False)
    assert "facp-1.fault" not in b.book.alarms
    assert b.lifecycle() == [("facp-1.fault", "raised"), ("facp-1.fault", "acknowledged"),
                             ("facp-1.fault", "cleared"), ("facp-1.fault", "closed")]  # fmt: skip
    b.close()


def test_alarms_a_cleared_alarm_waits_for_its_acknowledgement_and_counts_returns(tmp_path: Path) -> None:
    b = Book(tmp_path)
    b.event("maintenance", "raised", "smoke-1", "low_battery")
    b.event("maintenance", "cleared", "smoke-1", "low_battery", False)
    b.event("maintenance", "raised", "smoke-1", "low_battery")
    alarm = b.book.alarms["smoke-1.low_battery"]
    assert (alarm.active, alarm.count, alarm.priority) == (True, 2, 4)
    b.event("maintenance", "cleared", "smoke-1", "low_battery", False)
    assert not b.book.alarms["smoke-1.low_battery"].active, "cleared but still open: nobody acknowledged it"
    assert b.book.ack("smoke-1.low_battery", "ops", "platform") == (True, "closed")
    assert b.book.ack("smoke-1.low_battery", "ops", "platform") == (False, "no such open alarm")
    b.close()


def test_alarms_classes_and_ids(tmp_path: Path) -> None:
    b = Book(tmp_path)
    b.event("door", "raised", "door-main", "forced_open", severity="alarm")
    b.event("door", "raised", "door-main", "open")  # a door opening is no alarm
    b.event("offline", "raised", "smoke-2", "online", False)  # as the device tracker says it
    b.event("bollard", "changed", "bollard-east", "state", "fault", severity="alarm")
    b.event("bollard", "changed", "bollard-east", "fault_code", "rise_timeout", severity="alarm")
    b.event("fire", "raised", "smoke-3", "fire_alarm", severity="alarm")
    got = {aid: (a.cls, a.priority) for aid, a in b.book.alarms.items()}
    assert got == {
        "door-main.forced_open": ("security", 2),
        "smoke-2.offline": ("maintenance", 4),
        "bollard-east.controller_fault": ("fault", 3),
        "smoke-3.fire_alarm": ("fire", 1),
    }
    b.event("online", "cleared", "smoke-2", "online")
    b.event("bollard", "changed", "bollard-east", "state", "down", severity="info")
    assert not b.book.alarms["smoke-2.offline"].active
    assert not b.book.alarms["bollard-east.controller_fault"].active
    b.close()


def test_alarms_a_panels_fire_is_latched_until_the_panel_is_reset(tmp_path: Path) -> None:
    """R2: the fire bit dropping does not clear the fire alarm; the panel's reset does."""
    b = Book(tmp_path, panels=frozenset({"facp-1"}))
    b.event("fire", "raised", "facp-1", "fire", severity="alarm")
    b.event("fire", "cleared", "facp-1", "fire", False, severity="alarm")
    alarm = b.book.alarms["facp-1.fire"]
    assert (alarm.active, alarm.awaiting_reset) == (True, True)
    not_reset = {"fire": PointValue(False, Quality.GOOD), "reset": PointValue(False, Quality.GOOD),
                 "first_alarm_point": PointValue(7, Quality.GOOD)}  # fmt: skip
    b.book.on_panel_poll("facp-1", not_reset)
    assert b.book.alarms["facp-1.fire"].active
    b.book.on_panel_poll("facp-1", not_reset | {"first_alarm_point": PointValue(None, Quality.GOOD)})
    assert not b.book.alarms["facp-1.fire"].active
    assert ("facp-1.fire", "cleared") in b.lifecycle()
    b.close()


def test_alarms_renotified_while_unacknowledged(tmp_path: Path) -> None:
    b = Book(tmp_path, renotify_s=60)
    b.event("tamper", "raised", "smoke-1", "tamper")
    b.event("fault", "raised", "smoke-1", "fault")
    b.book.ack("smoke-1.fault", "wang", "guard")
    WallClock.wall += 59_000
    assert b.book.renotify() == 0
    WallClock.wall += 2_000
    assert b.book.renotify() == 1
    assert b.lifecycle()[-1] == ("smoke-1.tamper", "renotified")
    b.close()


def test_alarms_a_chattering_warning_is_announced_once_with_a_count(tmp_path: Path) -> None:
    """A detector's low-battery flag flickering: one warning, then, once it has settled, one event saying where it
    ended with the count of changes not announced. A fire flickering is announced every time."""
    b = Book(tmp_path)
    for _ in range(10):
        b.event("maintenance", "raised", "smoke-1", "low_battery")
        WallClock.wall += 1_000
        b.event("maintenance", "cleared", "smoke-1", "low_battery", False)
        WallClock.wall += 1_000
    assert b.lifecycle() == [("smoke-1.low_battery", "raised")]
    assert b.book.flush_chatter() == 0, "not settled yet"
    WallClock.wall += 60_000
    assert b.book.flush_chatter() == 1
    assert b.lifecycle() == [("smoke-1.low_battery", "raised"), ("smoke-1.low_battery", "cleared")]
    assert b.book.alarms["smoke-1.low_battery"].count == 10
    for _ in range(3):
        b.event("fire", "raised", "smoke-2", "fire_alarm", severity="alarm")
        b.event("fire", "cleared", "smoke-2", "fire_alarm", False, severity="alarm")
    assert [w for a, w in b.lifecycle() if a == "smoke-2.fire_alarm"] == ["raised", "cleared"] * 3
    b.close()


def test_alarms_survive_a_restart_without_duplicates(tmp_path: Path) -> None:
    """Rebuilt from state_dir/alarms.json; the devices raising their active conditions again at start (as the
    gateway's event memory does) add nothing; what is open is published retained at once."""
    b = Book(tmp_path)
    b.event("fault", "raised", "facp-1", "fault")
    b.event("maintenance", "raised", "smoke-1", "dirty_chamber")
    b.book.ack("smoke-1.dirty_chamber", "wang", "guard")
    before = b.lifecycle()
    b.close()
    again = Book(tmp_path)
    assert set(again.book.alarms) == {"facp-1.fault", "smoke-1.dirty_chamber"}
    assert again.book.alarms["smoke-1.dirty_chamber"].acked
    again.event("fault", "raised", "facp-1", "fault")
    again.event("maintenance", "raised", "smoke-1", "dirty_chamber")
    assert again.lifecycle() == before, "nothing raised twice"
    topic, payload = next((t, p) for t, p in again.board.take_dirty() if t.endswith("/alarms"))
    listed = json.loads(payload)
    assert [a["alarm_id"] for a in listed["alarms"]] == ["facp-1.fault", "smoke-1.dirty_chamber"]
    validate_message(topic.replace("s1/g1", "s1/g1"), listed)
    again.close()


async def test_alarms_end_to_end(tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any) -> None:
    """Simulated conditions raise a security, a maintenance and a fire alarm over MQTT; the guard acknowledges on
    the gateway's command line, the platform with a signed command; the fire stays until the panel's reset; a
    platform connecting late reads what is open from the retained list."""
    import aiomqtt  # noqa: PLC0415

    from gateway.base.keys import load_private, new_keypair  # noqa: PLC0415
    from gateway.safety.commands.envelope import sign  # noqa: PLC0415
    from tests.test_commands_e2e import Platform, cli  # noqa: PLC0415

    panel, detector = FirePanelSim(), SmokeDetectorSim()
    factory = contact_pin_factory()
    door = SimContact(factory, 17, "NC")
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/alarm")
    private, public = new_keypair(tmp_path / "keys", "platform-1")
    sock = Path(f"/tmp/ce-alarms-{tmp_path.name[-12:]}.sock")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel, 2: detector}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state", broker.url, [{"id": "gate", **endpoint}],
            [{"id": "facp-1", "bus": "gate", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1},
             {"id": "smoke-1", "bus": "gate", "unit": 2, "profile": "smoke_detector", "poll_interval_s": 0.1}],
            [{"id": "door-main", "pin": 17, "kind": "door", "contact": "NC", "debounce_ms": 10, "armed": "always"}],
        ).replace("[gateway]\n", f'[gateway]\ncontrol_socket = "{sock}"\n') + (
            f'\n[commands]\n[[commands.keys]]\nid = "platform-1"\nissuer = "platform"\npublic_key_file = "{public}"\n'
            'roles = ["operator"]\n'
        )  # fmt: skip
        host, port = broker.url.removeprefix("mqtt://").split(":")
        client = await stack.enter_async_context(
            aiomqtt.Client(host, int(port), identifier="platform-alarms", protocol=aiomqtt.ProtocolVersion.V5)
        )
        await client.subscribe("platform/replies", qos=1)
        platform = Platform(client)
        listener = asyncio.create_task(platform.listen())
        async with running_gateway(make_config(text), pin_factory=factory) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: "facp-1" in gw.board.devices and gw.board.devices["facp-1"].online)

            def raised(aid: str) -> Any:
                return lambda _t, p: p["detail"]["alarm_id"] == aid and p["value"] == "raised"

            door.set(True)
            _, security = await sub.wait_for(raised("door-main.forced_open"))
            assert (security["detail"]["class"], security["detail"]["priority"]) == ("security", 2)
            detector.set(low_battery=True)
            await sub.wait_for(raised("smoke-1.low_battery"))
            panel.alarm_point(4)
            _, fire = await sub.wait_for(raised("facp-1.fire"))
            assert (fire["severity"], fire["detail"]["priority"]) == ("alarm", 1)

            code, out = await cli("alarm", "list", "--socket", str(sock), "--lang", "zh-CN")
            assert code == 0, out
            assert out.splitlines()[0].startswith("P1 火警")
            code, out = await cli("alarm", "ack", "door-main.forced_open", "--by", "wang", "--socket", str(sock))
            assert (code, out.strip()) == (0, "door-main.forced_open: acknowledged")
            _, acked = await sub.wait_for(lambda _t, p: p["value"] == "acknowledged")
            assert (acked["detail"]["source"], acked["detail"]["by"]) == ("guard", "wang")

            async with asyncio.timeout(10):
                await gw.uplink.listening.wait()
            payload = sign(load_private(private), kid="platform-1", issuer="platform", audience="test-school/gw-1",
                           target="smoke-1.low_battery", action="alarm.ack", seq=1, operator="ops.li")  # fmt: skip
            await platform.send("smoke-1.low_battery", payload, b"ack-1")
            assert (await platform.until(b"ack-1", "done"))["state"] == "acknowledged"

            panel.clear_point(4)
            panel.state.fire = False  # the fire bit drops without a reset
            await sub.wait_for(raised("facp-1.inconsistent"))
            assert gw.alarms.alarms["facp-1.fire"].active, "latched until the panel is reset (R2)"
            door.set(False)
            await sub.wait_for(
                lambda _t, p: p["detail"]["alarm_id"] == "door-main.forced_open" and p["value"] == "closed"
            )
            panel.state.fire = True
            assert panel.reset()
            await sub.wait_for(lambda _t, p: p["detail"]["alarm_id"] == "facp-1.fire" and p["value"] == "cleared")

            # A platform that connects now reads what is still open.
            late = await subscriber_factory(broker.url, f"{PREFIX}/alarms")

            def fire_cleared(_t: str, p: dict[str, Any]) -> bool:
                return any(a["alarm_id"] == "facp-1.fire" and not a["active"] for a in p["alarms"])

            _, listed = await late.wait_for(fire_cleared)  # the retained list, or the update just behind it
            open_ids = {a["alarm_id"]: (a["active"], a["acked"]) for a in listed["alarms"]}
            assert open_ids["facp-1.fire"] == (False, False), "cleared, waiting for its acknowledgement"
            assert open_ids["smoke-1.low_battery"] == (True, True)
            assert "door-main.forced_open" not in open_ids
        listener.cancel()
    for topic, payload in [*sub.messages, *late.messages]:
        validate_message(topic, payload)


async def test_alarms_a_chattering_door_is_one_warning_with_a_count(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """R10: a door contact banging open and shut yields one risk warning (door-main.unstable, with the count of
    changes as evidence) instead of a flood of door events; quiet again, the warning is restored with the total."""
    factory = contact_pin_factory()
    door = SimContact(factory, 17, "NC")
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    text = config_text(
        tmp_path / "state", broker.url, [], [],
        [{"id": "door-main", "pin": 17, "kind": "door", "contact": "NC", "debounce_ms": 0, "chatter_count": 5,
          "chatter_window_s": 0.8, "armed": "never"}],
    ) + "\n[alarms]\nchatter_s = 1\n"  # fmt: skip
    async with running_gateway(make_config(text), pin_factory=factory):
        for i in range(30):
            door.set(i % 2 == 0)
            await asyncio.sleep(0.02)
        door.set(False)
        _, warning = await sub.wait_for(lambda t, p: t.endswith("/event/alarm") and p["value"] == "raised")
        assert warning["detail"]["alarm_id"] == "door-main.unstable"
        assert (warning["detail"]["class"], warning["detail"]["priority"]) == ("maintenance", 4)
        assert warning["detail"]["evidence_changes"] == 6
        _, restored = await sub.wait_for(lambda t, p: t.endswith("/event/alarm") and p["value"] == "cleared")
        assert restored["detail"]["evidence_changes"] >= 25, "the total of the whole unstable spell"
    door_events = [p for t, p in sub.messages if t.endswith("/event/door")]
    assert len(door_events) <= 6, f"{len(door_events)} door events: a flood"
    assert [p["point"] for t, p in sub.messages if t.endswith("/event/maintenance")] == ["unstable", "unstable"]
    for topic, payload in sub.messages:
        validate_message(topic, payload)


@pytest.mark.parametrize(
    ("cls", "alarm_id", "start", "stop"),
    [
        ("prealarm", "smoke-1.prealarm", lambda p, d: d.set_smoke(2.5), lambda p, d: d.set_smoke(0.0)),
        ("supervisory", "facp-1.supervisory", lambda p, d: p.set(supervisory=True),
         lambda p, d: p.set(supervisory=False)),
        ("fault", "smoke-1.fault", lambda p, d: d.set(fault=True), lambda p, d: d.set(fault=False)),
        ("tamper", "smoke-1.tamper", lambda p, d: d.set(tamper=True), lambda p, d: d.set(tamper=False)),
        ("maintenance", "smoke-1.dirty_chamber", lambda p, d: d.set(dirty_chamber=True),
         lambda p, d: d.set(dirty_chamber=False)),
    ],
)  # fmt: skip
async def test_alarms_each_class_over_mqtt(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any, cls: str, alarm_id: str, start: Any, stop: Any
) -> None:
    """A condition on a simulated device raises its alarm; the guard acknowledges it; the condition ends and the
    alarm is cleared and closed; the retained list is empty again."""
    from tests.test_commands_e2e import cli  # noqa: PLC0415

    panel, detector = FirePanelSim(), SmokeDetectorSim()
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    sock = Path(f"/tmp/ce-cls-{tmp_path.name[-14:]}.sock")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel, 2: detector}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state", broker.url, [{"id": "gate", **endpoint}],
            [{"id": "facp-1", "bus": "gate", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1},
             {"id": "smoke-1", "bus": "gate", "unit": 2, "profile": "smoke_detector", "poll_interval_s": 0.1}],
        ).replace("[gateway]\n", f'[gateway]\ncontrol_socket = "{sock}"\n')  # fmt: skip
        text += "\n[alarms]\nchatter_s = 1\n"  # a risk warning restored within a second is announced a second later
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: all(gw.board.devices[d].online for d in ("facp-1", "smoke-1")))
            start(panel, detector)

            def lifecycle(what: str) -> Any:
                return lambda t, p: (
                    t.endswith("/event/alarm") and p["detail"]["alarm_id"] == alarm_id and p["value"] == what
                )

            _, raised = await sub.wait_for(lifecycle("raised"))
            assert raised["detail"]["class"] == cls
            code, out = await cli("alarm", "ack", alarm_id, "--by", "wang", "--socket", str(sock))
            assert code == 0, out
            await sub.wait_for(lifecycle("acknowledged"))
            stop(panel, detector)
            await sub.wait_for(lifecycle("cleared"))
            await sub.wait_for(lifecycle("closed"))
            await sub.wait_for(lambda t, p: t.endswith("/alarms") and p["alarms"] == [])
    for topic, payload in sub.messages:
        validate_message(topic, payload)
