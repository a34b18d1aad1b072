"""Forced-open and held-open door alarms (R11), armed during the closed-campus schedule or always, per door.

Forced open: the door opens while armed with no request-to-exit (or access grant) in the `rex_window_s` before
the change. Held open: open longer than `held_open_s` while armed, with a pre-alarm at `held_prewarn_s`. Each
alarm is raised once and cleared when the door closes, so the platform can close its risk record with the time.

Doors on GPIO pins are timed by their debounced edges. Doors on a field node's loops are seen when the node is
polled: a door may have moved at any time since the last good read began (a poll interval, more after lost replies
or while the node was lost), and its request-to-exit window is longer by that much, or a guard who pressed the
button just before opening would be reported as forcing the door.

Alarms raised before a restart are taken from the event memory: a door found shut at start clears them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from drivers.profile import Quality
from gateway.base.clock import Clock
from gateway.base.i18n import N_, tr
from gateway.config import Config, field_doors
from gateway.field.polling import PolledDevice
from gateway.store.event_memory import EventMemory
from gateway.store.recorder import Recorder
from gateway.store.records import Detail, Event, EventState, Reading, Severity, Stamp

log = logging.getLogger(__name__)

_ALARMS: dict[str, tuple[Severity, str, str]] = {
    # point: (severity, the alarm, its end), translated through the catalogue (gateway/i18n.py)
    "forced_open": ("alarm", N_("door forced open"), N_("door forced open: door closed")),
    "held_open_prewarn": (
        "info",
        N_("door open too long: closing soon required"),
        N_("door open too long: door closed"),
    ),
    "held_open": ("warning", N_("door held open"), N_("door held open: door closed")),
}


class DoorSettings(Protocol):
    """What a door's alarms are configured by: a GPIO door input or a door on a field node's loop."""

    @property
    def id(self) -> str: ...
    @property
    def armed(self) -> Literal["schedule", "always", "never"]: ...
    @property
    def rex_window_s(self) -> float: ...
    @property
    def held_open_s(self) -> float: ...
    @property
    def held_prewarn_s(self) -> float | None: ...


class _Door:
    def __init__(self, cfg: DoorSettings) -> None:
        self.cfg = cfg
        self.open = False
        self.opened_mono: float | None = None
        self.last_rex: float | None = None
        self.raised: set[str] = set()
        self.timers: list[asyncio.TimerHandle] = []

    def cancel(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()


class DoorAlarms:
    """All doors of the gateway. `closed_campus()` says whether the schedule arms them now (None: unknown)."""

    def __init__(
        self,
        doors: Iterable[DoorSettings],
        recorder: Recorder,
        clock: Clock,
        closed_campus: Callable[[], bool | None],
        memory: EventMemory | None = None,
    ) -> None:
        self.recorder = recorder
        self.clock = clock
        self.closed_campus = closed_campus
        self.doors = {d.id: _Door(d) for d in doors}
        if memory is not None:
            for door_id, d in self.doors.items():
                d.raised = {point for point, value in memory.of(door_id).items() if point in _ALARMS and value is True}

    def warn_unarmed(self, has_schedule: bool) -> None:
        """Doors armed by the schedule on a site without one never alarm: said once, at start."""
        if has_schedule:
            return
        idle = sorted(d for d, door in self.doors.items() if door.cfg.armed == "schedule")
        if idle:
            log.warning(
                "doors %s are armed by the closed-campus schedule and there is none: no forced-open or held-open "
                'alarms from them (add a [schedule], or armed = "always")',
                ", ".join(idle),
            )

    def armed(self, door: str) -> bool:
        """Whether the door's alarms are armed now."""
        mode = self.doors[door].cfg.armed
        return mode == "always" or (mode == "schedule" and self.closed_campus() is True)

    def rex(self, door: str, mono: float) -> None:
        """A request-to-exit button or an access grant for `door`."""
        self.doors[door].last_rex = mono

    def changed(self, door: str, is_open: bool, mono: float, initial: bool = False, late_s: float = 0.0) -> None:
        """The door's contact changed (debounced), seen at `mono`, having moved up to `late_s` before; `initial`: its
        level when the gateway starts (an open door then counts towards held open, but was not seen being forced;
        a shut one ends what was raised before the restart)."""
        d = self.doors[door]
        if initial and not is_open and d.raised:
            for point in sorted(d.raised):
                self._emit(d, point, False, mono)
            d.raised.clear()
        if is_open == d.open:
            return
        d.open = is_open
        if not is_open:
            d.opened_mono = None
            d.cancel()
            for point in sorted(d.raised):
                self._emit(d, point, False, mono)
            d.raised.clear()
            return
        d.opened_mono = mono
        if not self.armed(door):
            return
        if initial:
            self._start_held(d)
            return
        window = d.cfg.rex_window_s + late_s
        if d.last_rex is None or not (mono - window <= d.last_rex <= mono + 0.05):
            detail: Detail = {"rex_window_s": d.cfg.rex_window_s}
            if late_s:
                detail["seen_within_s"] = round(late_s, 3)
            self._raise(d, "forced_open", mono, detail)
        self._start_held(d)

    def rearm(self) -> None:
        """The schedule changed: start held-open timing for doors that are open and now armed; stop it for the
        rest. Alarms already raised stay until their door closes."""
        for door_id, d in self.doors.items():
            d.cancel()
            if d.open and self.armed(door_id):
                self._start_held(d)

    def _start_held(self, d: _Door) -> None:
        assert d.opened_mono is not None
        loop = asyncio.get_running_loop()
        open_for = self.clock.mono() - d.opened_mono
        prewarn = d.cfg.held_prewarn_s if d.cfg.held_prewarn_s is not None else d.cfg.held_open_s * 0.75
        for point, after in (("held_open_prewarn", prewarn), ("held_open", d.cfg.held_open_s)):
            if point not in d.raised:
                d.timers.append(loop.call_later(max(0.0, after - open_for), self._held, d, point))

    def _held(self, d: _Door, point: str) -> None:
        if d.open and d.opened_mono is not None and self.armed(d.cfg.id):
            self._raise(d, point, self.clock.mono(), {"open_s": round(self.clock.mono() - d.opened_mono, 1)})

    def _raise(self, d: _Door, point: str, mono: float, detail: Detail) -> None:
        d.raised.add(point)
        log.warning("door %s: %s", d.cfg.id, _ALARMS[point][1])
        self._emit(d, point, True, mono, detail)

    def _emit(self, d: _Door, point: str, active: bool, mono: float, extra: Detail | None = None) -> None:
        severity, raised, ended = _ALARMS[point]
        text = raised if active else ended
        en, zh = tr(text, "en"), tr(text, "zh-CN")
        detail: Detail = {"text_en": en, "text_zh": zh, **(extra or {})} if active else {"text_en": en, "text_zh": zh}
        now_mono = self.clock.mono()
        stamp = Stamp(self.clock.wall_ms() - int((now_mono - mono) * 1000), mono, self.clock.synced())
        state: EventState = "raised" if active else "cleared"
        event = Event("door", severity, state, d.cfg.id, point, active, Quality.GOOD, stamp, detail)
        self.recorder.record([], [event])

    def close(self) -> None:
        """Stop every timer."""
        for d in self.doors.values():
            d.cancel()


def site_doors(cfg: Config) -> list[DoorSettings]:
    """The doors with alarms: GPIO inputs of kind door, and doors on field nodes' loops."""
    return [*(i for i in cfg.gpio.inputs if i.kind == "door"), *field_doors(cfg)]


class FieldDoorFeed:
    """A field node's loop states, as the gateway polls them, to the doors configured on those loops.

    A loop shorted or cut (tamper, its own warning) says nothing of the door: the door keeps the state it had. The
    first state after start is where the door stands, not a movement: an open door then starts held-open timing but
    is not taken as forced. A node lost and found again is not a start: a door found open was opened while no one
    could see it, and is checked against the exit button over all that time. A door opened and shut between two
    reads shows only in its loop's change counter: two changes or more with the same state are an opening seen late
    (a counter that went back is the node restarted, not changes). While the loop is unstable (its state reads
    `bad`: the counter ran faster than the poll), its changes are the unstable warning's, not openings: the door
    keeps its state and the counter is followed without being judged, until the state reads good again.
    """

    def __init__(self, cfg: Config, doors: DoorAlarms) -> None:
        self.doors = doors
        self._loops: dict[tuple[str, str], tuple[str, int]] = {}  # (node, point) -> (door, loop)
        for d in cfg.devices:
            for door in d.doors:
                for point in (f"door{door.loop}_state", f"door{door.loop}_changes"):
                    self._loops[(d.id, point)] = (door.id, door.loop)
        self._state: dict[str, str] = {}  # door -> the door's last known state: open or normal (shut)
        self._raw: dict[str, str] = {}  # door -> its loop's last state read, tamper (short, cut) included
        self._changes: dict[str, int] = {}  # door -> its loop's change counter at the last good read
        self._read_started: dict[str, float] = {}  # node -> when its last good read began
        self._unused_said: set[str] = set()
        self._unstable: set[str] = set()  # doors whose loop state reads bad

    def on_poll(self, entry: PolledDevice) -> None:
        """After each poll of a device (a BusPoller listener): when a good read began, for the next one's lateness."""
        if entry.last_values is not None:
            self._read_started[entry.device.name] = entry.last_read_started_mono

    def on_readings(self, readings: list[Reading]) -> None:
        moved: dict[str, tuple[Reading, str | None, int | None]] = {}  # door -> (a reading, new state, new count)
        for r in readings:
            found = self._loops.get((r.device, r.point))
            if found is not None and r.quality is Quality.BAD and r.point.endswith("_state"):
                self._unstable.add(found[0])
            if found is None or r.quality is not Quality.GOOD:
                continue
            door, loop = found
            _, state, count = moved.get(door, (r, None, None))
            if r.point.endswith("_state") and isinstance(r.value, str):
                state = r.value
            elif r.point.endswith("_changes") and isinstance(r.value, int):
                count = r.value
            moved[door] = (r, state, count)
            if r.value == "unused" and door not in self._unused_said:
                self._unused_said.add(door)
                log.warning("door %s: loop %d of %s reads unused: the node is set up without it (config.json "
                            "point_count); no door alarms from it", door, loop, r.device)  # fmt: skip
        for door, (r, state, count) in moved.items():
            if door in self._unstable:
                if count is not None:
                    self._changes[door] = count
                if state is None:
                    continue
                self._unstable.discard(door)
                self._moved(door, r, state, None)  # stable again: the state itself says whether the door moved
                continue
            self._moved(door, r, state, count)

    def _moved(self, door: str, r: Reading, state: str | None, count: int | None) -> None:
        before, before_raw, before_count = self._state.get(door), self._raw.get(door), self._changes.get(door)
        if count is not None:
            self._changes[door] = count
        if state is not None:
            self._raw[door] = state
        if state in ("open", "normal"):
            self._state[door] = state
        if before is None:  # the first read since start: where the door stands
            if door in self._state:
                self.doors.changed(door, self._state[door] == "open", r.at.mono, initial=True)
            return
        started = self._read_started.get(r.device)
        late_s = max(0.0, r.at.mono - started) if started is not None else 0.0
        now = self._state[door]
        seen = int(state is not None and state != before_raw)  # the changes this read shows; the rest went unseen
        counted = seen
        if count is not None and before_count is not None:
            # Back by less than half the range is the node starting again (counters from 0), not a wrap.
            restarted = count < before_count and before_count - count < 0x8000
            counted = seen if restarted else (count - before_count) % 0x10000
        if now == before == "normal" and counted - seen >= 2:
            self.doors.changed(door, True, r.at.mono, late_s=late_s)  # opened and shut between two reads
            self.doors.changed(door, False, r.at.mono)
        elif now != before:
            self.doors.changed(door, now == "open", r.at.mono, late_s=late_s)
