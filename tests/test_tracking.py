"""State tracking: change of state, deadband, offline detection and fire state unknown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.profile import PointValue, Quality, Value, decode, load_profile
from gateway.field.tracking import DeviceTracker
from gateway.store.event_memory import EventMemory
from gateway.store.records import Reading, Stamp
from simulators.door_node import DoorNodeSim
from tests.test_profiles import SMOKE_PREALARM_DIRTY


def at(mono: float) -> Stamp:
    return Stamp(1_780_000_000_000 + int(mono * 1000), mono, True)


def smoke(obscuration_raw: int = 250, status: int = 0x0012) -> dict[str, PointValue]:
    words = list(SMOKE_PREALARM_DIRTY)
    words[0] = status
    words[1] = obscuration_raw
    return decode(load_profile("smoke_detector"), {"status": words})


def test_tracking_first_poll_reports_every_point() -> None:
    """The first good poll sends every point, and raises events for flags already set."""
    t = DeviceTracker("s", load_profile("smoke_detector"))
    out = t.update(smoke(), at(0))
    assert len(out.readings) == len(load_profile("smoke_detector").points)
    assert {(e.cls, e.point, e.state) for e in out.events} == {
        ("prealarm", "prealarm", "raised"),
        ("maintenance", "dirty_chamber", "raised"),
    }


def test_tracking_deadband_suppresses_small_changes() -> None:
    """Obscuration moving less than its 0.1 %/m deadband is not sent; moving by it is."""
    t = DeviceTracker("s", load_profile("smoke_detector"))
    t.update(smoke(250), at(0))
    assert t.update(smoke(255), at(1)).readings == []
    out = t.update(smoke(260), at(2))
    assert [(r.point, r.value) for r in out.readings] == [("smoke_obscuration", 2.6)]


def test_tracking_fire_is_an_alarm_event() -> None:
    """The fire bit raises a fire event of severity alarm; its return to normal clears it."""
    t = DeviceTracker("s", load_profile("smoke_detector"))
    t.update(smoke(status=0), at(0))
    raised = t.update(smoke(status=0x0001), at(1)).events
    assert [(e.cls, e.severity, e.state) for e in raised] == [("fire", "alarm", "raised")]
    cleared = t.update(smoke(status=0), at(2)).events
    assert [(e.cls, e.state) for e in cleared] == [("fire", "cleared")]


def test_tracking_offline_needs_polls_and_time() -> None:
    """Offline after 3 failed polls *and* 10 s without a good reply, whichever is later (R4)."""
    t = DeviceTracker("s", load_profile("smoke_detector"), offline_after_polls=3, offline_after_s=10)
    t.update(smoke(), at(0))
    for mono in (1, 2, 3, 4):
        assert not t.failure("timeout", at(mono)).went_offline  # 4 polls, but only 4 s
    out = t.failure("timeout", at(10.5))
    assert out.went_offline
    assert [(e.cls, e.state) for e in out.events] == [("offline", "raised")]


def test_tracking_offline_makes_fire_unknown_never_normal() -> None:
    """Once offline every point, fire included, reads null with quality offline."""
    t = DeviceTracker("s", load_profile("smoke_detector"), offline_after_polls=1, offline_after_s=0)
    t.update(smoke(status=0), at(0))
    out = t.failure("timeout", at(1))
    fire = next(r for r in out.readings if r.point == "fire_alarm")
    assert fire.value is None
    assert fire.quality is Quality.OFFLINE
    assert '"value":null,"quality":"offline"' in fire.body()


def test_tracking_back_online_reports_again() -> None:
    """A device that answers again raises 'online' and re-sends every point; a fire present is raised again."""
    t = DeviceTracker("s", load_profile("smoke_detector"), offline_after_polls=1, offline_after_s=0)
    t.update(smoke(status=0x0001), at(0))
    t.failure("timeout", at(1))
    out = t.update(smoke(status=0x0001), at(2))
    assert out.came_online
    assert ("online", "cleared") in [(e.cls, e.state) for e in out.events]
    assert ("fire", "raised") in [(e.cls, e.state) for e in out.events]
    assert len(out.readings) == len(load_profile("smoke_detector").points)


def test_tracking_enum_change_event_with_alarm_values() -> None:
    """A bollard entering 'fault' is an alarm; entering 'up' is information."""
    from tests.test_profiles import BOLLARD_RISING_DI, BOLLARD_RISING_IR  # noqa: PLC0415

    profile = load_profile("bollard_controller")
    t = DeviceTracker("b", profile)
    t.update(decode(profile, {"inputs": BOLLARD_RISING_DI, "registers": BOLLARD_RISING_IR}), at(0))
    up = list(BOLLARD_RISING_IR)
    up[1] = 3
    ev = t.update(decode(profile, {"inputs": BOLLARD_RISING_DI, "registers": up}), at(1)).events
    assert [(e.point, e.value, e.severity, e.detail) for e in ev] == [("state", "up", "info", {"previous": "rising"})]
    fault = list(up)
    fault[1] = 6
    fault[2] = 1
    ev = t.update(decode(profile, {"inputs": BOLLARD_RISING_DI, "registers": fault}), at(2)).events
    assert [(e.point, e.value, e.severity) for e in ev] == [
        ("state", "fault", "alarm"),
        ("fault_code", "rise_timeout", "alarm"),
    ]


def test_tracking_offline_survives_wall_clock_jumps() -> None:
    """Offline detection runs on the monotonic clock: the wall clock jumping a day back changes nothing."""
    t = DeviceTracker("s", load_profile("smoke_detector"), offline_after_polls=2, offline_after_s=10)
    t.update(smoke(), Stamp(1_780_000_000_000, 100.0, False))
    day = 86_400_000
    assert not t.failure("timeout", Stamp(1_780_000_000_000 - day, 101.0, True)).went_offline
    assert not t.failure("timeout", Stamp(1_780_000_000_000 - day + 5_000, 105.0, True)).went_offline
    out = t.failure("timeout", Stamp(1_780_000_000_000 - day + 11_000, 110.5, True))
    assert out.went_offline
    assert out.readings[0].at.clock_synced is True


def test_tracking_fire_that_ended_while_offline_is_cleared() -> None:
    """A fire raised, the detector silent, the fire over when it answers again: the platform hears 'cleared'."""
    t = DeviceTracker("s", load_profile("smoke_detector"), offline_after_polls=1, offline_after_s=0)
    assert ("fire", "raised") in [(e.cls, e.state) for e in t.update(smoke(status=0x0001), at(0)).events]
    t.failure("timeout", at(1))
    out = t.update(smoke(status=0), at(2))
    assert ("fire", "cleared") in [(e.cls, e.state) for e in out.events]
    assert [(e.cls, e.state) for e in t.update(smoke(status=0), at(3)).events] == []


def test_tracking_remembers_event_states_across_restarts(tmp_path: Path) -> None:
    """A fire raised before a restart and over after it is cleared; one still burning is raised again."""
    memory = EventMemory(tmp_path / "event-state.json")
    before = DeviceTracker("s", load_profile("smoke_detector"), remembered=memory.of("s"))
    memory.remember(before.update(smoke(status=0x0001), at(0)).events)

    after = DeviceTracker("s", load_profile("smoke_detector"), remembered=EventMemory(memory.path).of("s"))
    assert [(e.cls, e.state) for e in after.update(smoke(status=0), at(0)).events] == [("fire", "cleared")]
    again = DeviceTracker("s", load_profile("smoke_detector"), remembered=EventMemory(memory.path).of("s"))
    assert [(e.cls, e.state) for e in again.update(smoke(status=0x0001), at(0)).events] == [("fire", "raised")]


def test_event_memory_survives_a_damaged_file(tmp_path: Path) -> None:
    """A garbled memory file means starting without memory, never a crash."""
    path = tmp_path / "event-state.json"
    path.write_bytes(b"\x00{garbage")
    assert EventMemory(path).of("s") == {}
    path.write_text('["not", "a", "map"]')
    assert EventMemory(path).of("s") == {}


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 12.5, 1e-7, 3.0, "up", "关闭", 'say "hi"\n'], ids=repr)
@pytest.mark.parametrize("quality", [Quality.GOOD, Quality.OFFLINE])
def test_reading_body_is_the_json_of_its_fields(value: Value, quality: Quality) -> None:
    """The hand-built reading JSON is exactly what json.dumps makes of the same fields."""
    r = Reading("门-1", "ch1", value, quality, Stamp(1_780_000_000_123, 5.0, False))
    expected = {
        "device": "门-1",
        "point": "ch1",
        "value": value if quality is Quality.GOOD else None,
        "quality": quality.value,
        "ts": "2026-05-28T20:26:40.123Z",
        "clock_synced": False,
    }
    assert json.loads(r.body()) == expected
    assert r.body() == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)


def door_node(door1_changes: int) -> dict[str, PointValue]:
    node = DoorNodeSim(points=1)
    words = {"inputs": node.read(2, 0, 10), "registers": node.read(4, 0, 28)}
    assert isinstance(words["registers"], list)
    words["registers"][20] = door1_changes
    return decode(load_profile("door_node"), words)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("counters", "unstable"),
    [
        ([0xFFF0, 0x0004], True),  # wrapped: 20 changes
        ([500, 3], False),  # went back: the node started again, counting from 0
        ([7, 12, 17], False),  # 10 changes in the window: at the limit, not over it
    ],
)
def test_tracking_a_change_counter_wraps_and_restarts(counters: list[int], unstable: bool) -> None:
    """A change counter counts modulo 2^16; one that goes back is the device restarted, not changes."""
    t = DeviceTracker("node", load_profile("door_node"), chatter_count=10, chatter_window_s=10)
    events = [e for i, c in enumerate(counters) for e in t.update(door_node(c), at(i)).events]
    assert [(e.point, e.state) for e in events if e.cls == "maintenance"] == (
        [("door1_open_unstable", "raised")] if unstable else []
    )


def test_tracking_changes_counted_over_an_outage_are_no_burst() -> None:
    """A door node back from ten minutes offline, its loop used twelve times meanwhile: those changes were spread
    over the outage, not a burst, so the loop is not unstable and its points stay good (its events not held back)."""
    t = DeviceTracker("node", load_profile("door_node"), chatter_count=10, chatter_window_s=10)
    t.update(door_node(100), at(0))
    for i in range(1, 4):
        t.failure("no reply", at(i))
    out = t.update(door_node(112), at(600))
    assert [(e.point, e.state) for e in out.events if e.cls == "maintenance"] == []
    assert all(r.quality is Quality.GOOD for r in out.readings if r.point.startswith("door1"))
    # Twelve changes between two reads a second apart are a burst.
    out = t.update(door_node(124), at(601))
    assert [(e.point, e.state) for e in out.events if e.cls == "maintenance"] == [("door1_open_unstable", "raised")]
