"""Forced-open and held-open door alarms (R11), armed during the closed-campus schedule or always, per door.

Forced open: the door opens while armed with no request-to-exit (or access grant) in the `rex_window_s` before
the change. Held open: open longer than `held_open_s` while armed, with a pre-alarm at `held_prewarn_s`. Each
alarm is raised once and cleared when the door closes, so the platform can close its risk record with the time.

Doors on GPIO pins are timed by their debounced edges. Doors on a field node's loops are seen when the node is
polled, up to a poll interval after they moved: their request-to-exit window is longer by that interval, or a
guard who pressed the button just before opening would be reported as forcing the door.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol

from drivers.profile import Quality
from gateway.clock import Clock
from gateway.config import Config
from gateway.i18n import N_, tr
from gateway.recorder import Recorder
from gateway.records import Detail, Event, EventState, Reading, Severity, Stamp

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
    def __init__(self, cfg: DoorSettings, late_s: float) -> None:
        self.cfg = cfg
        self.late_s = late_s  # how long after it moved the gateway may see it (a polled door: its poll interval)
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
        late_s: Mapping[str, float] | None = None,
    ) -> None:
        self.recorder = recorder
        self.clock = clock
        self.closed_campus = closed_campus
        self.doors = {d.id: _Door(d, (late_s or {}).get(d.id, 0.0)) for d in doors}

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

    def changed(self, door: str, is_open: bool, mono: float, initial: bool = False) -> None:
        """The door's contact changed (debounced), at `mono`; `initial`: its level when the gateway starts (an
        open door then counts towards held open, but was not seen being forced)."""
        d = self.doors[door]
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
        window = d.cfg.rex_window_s + d.late_s
        if d.last_rex is None or not (mono - window <= d.last_rex <= mono + 0.05):
            detail: Detail = {"rex_window_s": d.cfg.rex_window_s}
            if d.late_s:
                detail["seen_within_s"] = d.late_s
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
    return [i for i in cfg.gpio.inputs if i.kind == "door"] + [door for d in cfg.devices for door in d.doors]


def field_door_lateness(cfg: Config) -> dict[str, float]:
    """A field node's door is seen up to one poll interval after it moved."""
    return {door.id: d.poll_interval_s for d in cfg.devices for door in d.doors}


class FieldDoorFeed:
    """A field node's loop states, as the gateway polls them, to the doors configured on those loops.

    A loop shorted or cut (tamper, its own warning) says nothing of the door: the door keeps the state it had. The
    first state after start, or after the node was lost, is where the door stands, not a movement: an open door then
    starts held-open timing but is not taken as forced.
    """

    def __init__(self, cfg: Config, doors: DoorAlarms) -> None:
        self.doors = doors
        self._door_of = {(d.id, f"door{door.loop}_state"): door.id for d in cfg.devices for door in d.doors}
        self._known: set[str] = set()

    def on_readings(self, readings: list[Reading]) -> None:
        for r in readings:
            door = self._door_of.get((r.device, r.point))
            if door is None:
                continue
            if r.quality is not Quality.GOOD:
                self._known.discard(door)
            elif r.value in ("open", "normal"):
                self.doors.changed(door, r.value == "open", r.at.mono, initial=door not in self._known)
                self._known.add(door)
