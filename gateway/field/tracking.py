"""State tracking: which readings are worth sending, which changes are events, when a device is offline.

Readings are sent on change of state, when an analog value moves by its deadband, and at a heartbeat. A device
that stops answering goes offline after `offline_after_polls` failed polls *and* `offline_after_s` without a good
reply (whichever comes later, so a slow bus does not flap); then every point reads `offline` and a fire state is
unknown, never normal.

Points whose changes the device counts itself (a profile's `counts`) are unstable when the counter moves by more
than `chatter_count` within `chatter_window_s` (R10, as a GPIO input): one maintenance warning, the points `bad`
until the counter has stood still for a window, and their events held back meanwhile.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from drivers.profile import Point, PointValue, Profile, Quality, Value
from gateway.base.i18n import N_, both
from gateway.store.records import Detail, Event, EventState, Reading, Severity, Stamp

COUNTER_RANGE = 0x10000


@dataclass(slots=True)
class _Counter:
    """A change counter of the device's: its last value, its recent moves and, while unstable, the spell."""

    point: Point
    value: int | None = None
    value_mono: float = 0.0  # when `value` was read
    moves: deque[tuple[float, int]] = field(default_factory=deque)  # (mono, changes) within the window
    spell_changes: int = 0  # > 0: unstable, with the changes counted since it began
    last_move_mono: float = 0.0


@dataclass(slots=True)
class Outcome:
    """What one poll produced."""

    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    went_offline: bool = False
    came_online: bool = False


class DeviceTracker:
    """Remembers the last reported value of each point of one device."""

    def __init__(
        self,
        device: str,
        profile: Profile,
        offline_after_polls: int = 3,
        offline_after_s: float = 10.0,
        heartbeat_s: float = 300.0,
        started_mono: float = 0.0,
        remembered: dict[str, Value] | None = None,
        chatter_count: int = 10,
        chatter_window_s: float = 10.0,
    ) -> None:
        """`remembered`: what the event points last reported before this process started (EventMemory)."""
        self.device = device
        self.profile = profile
        self.offline_after_polls = offline_after_polls
        self.offline_after_s = offline_after_s
        self.heartbeat_s = heartbeat_s
        self.reported: dict[str, PointValue] = {}
        # The last good value of each event point; unlike `reported` it survives offline periods, so that a fire
        # that ended meanwhile is cleared when the device answers again.
        self.event_values: dict[str, Value] = dict(remembered or {})
        # After a start or an offline period an active alarm is raised again: the platform was told "unknown".
        self.reassert = True
        self.online: bool | None = None  # None: not known yet
        self.failures = 0
        self.last_good_mono = started_mono
        self.last_heartbeat = -1e18
        self.last_error = ""
        self.chatter_count = chatter_count
        self.chatter_window_s = chatter_window_s
        self._counters = [_Counter(p) for p in profile.points if p.counts]

    def _changed(self, point: Point, old: PointValue | None, new: PointValue) -> bool:
        if old is None or old.quality != new.quality:
            return True
        if old.value == new.value:
            return False
        if (
            isinstance(old.value, int | float)
            and isinstance(new.value, int | float)
            and not isinstance(new.value, bool)
        ):
            return abs(new.value - old.value) >= point.deadband if point.deadband > 0 else True
        return True

    def update(self, values: dict[str, PointValue], at: Stamp) -> Outcome:
        """A good poll: return the readings and events it causes."""
        out = Outcome()
        if self.online is False:
            out.came_online = True
            out.events.append(
                Event(
                    "online",
                    "info",
                    "cleared",
                    self.device,
                    "online",
                    True,
                    Quality.GOOD,
                    at,
                    {"after_failures": self.failures},
                )
            )
        self.online = True
        self.failures = 0
        self.last_good_mono = at.mono
        heartbeat = at.mono - self.last_heartbeat >= self.heartbeat_s
        if heartbeat:
            self.last_heartbeat = at.mono
        if self._counters:
            values = self._chatter(values, at, out)
        for point in self.profile.points:
            new = values[point.name]
            old = self.reported.get(point.name)
            if heartbeat or self._changed(point, old, new):
                out.readings.append(Reading(self.device, point.name, new.value, new.quality, at))
                self.reported[point.name] = new
            if point.event is not None:
                ev = self._event(point, new, at)
                if ev is not None:
                    out.events.append(ev)
        self.reassert = False
        return out

    def _chatter(self, values: dict[str, PointValue], at: Stamp, out: Outcome) -> dict[str, PointValue]:
        """Follow each change counter; the values with the points of unstable counters marked `bad`."""
        marked = dict(values)
        for c in self._counters:
            since = c.value_mono
            moved = self._moved(c, values[c.point.name], at.mono)
            if moved and not c.spell_changes and at.mono - since > self.chatter_window_s:
                # Changes counted over longer than a window (the node was offline, or backed off): how they were
                # spread is not known, so they are no burst; the field door feed still sees them as unseen moves.
                moved = 0
            if c.spell_changes:
                c.spell_changes += moved
                if moved:
                    c.last_move_mono = at.mono
                elif at.mono - c.last_move_mono >= self.chatter_window_s:
                    out.events.append(self._unstable_event(c, False, c.spell_changes, at))
                    c.spell_changes = 0
            elif moved:
                c.moves.append((at.mono, moved))
                while c.moves and at.mono - c.moves[0][0] > self.chatter_window_s:
                    c.moves.popleft()
                changes = sum(n for _, n in c.moves)
                if changes > self.chatter_count:
                    c.moves.clear()
                    c.spell_changes, c.last_move_mono = changes, at.mono
                    out.events.append(self._unstable_event(c, True, changes, at))
            if c.spell_changes:
                marked.update((name, PointValue(None, Quality.BAD)) for name in c.point.counts)
        return marked

    @staticmethod
    def _moved(c: _Counter, now: PointValue, mono: float) -> int:
        """The changes the counter counted since the last good read; 0 for the first, or when it went back by less
        than half its range (the device started again, counting from 0: not changes)."""
        if now.quality is not Quality.GOOD or not isinstance(now.value, int):
            return 0
        before, c.value, c.value_mono = c.value, now.value, mono
        if before is None or (now.value < before and before - now.value < COUNTER_RANGE // 2):
            return 0
        return (now.value - before) % COUNTER_RANGE

    def _unstable_event(self, c: _Counter, raised: bool, changes: int, at: Stamp) -> Event:
        why = N_("point unstable: changing faster than the poll can follow") if raised else N_("point stable again")
        text_en, text_zh = both(why)
        detail: Detail = {
            "changes": changes,
            "window_s": self.chatter_window_s,
            "counter": c.point.name,
            "points": ",".join(c.point.counts),
            "text_en": text_en,
            "text_zh": text_zh,
        }
        state: EventState = "raised" if raised else "cleared"
        point = f"{c.point.counts[0]}_unstable"
        return Event("maintenance", "warning", state, self.device, point, raised, Quality.GOOD, at, detail)

    def _event(self, point: Point, new: PointValue, at: Stamp) -> Event | None:
        assert point.event is not None
        if new.quality is not Quality.GOOD:
            return None
        before = self.event_values.get(point.name)
        self.event_values[point.name] = new.value
        if point.type in ("bit", "di"):
            again = self.reassert and bool(new.value)
            if (new.value == before and not again) or (before is None and not new.value):
                return None
            state: EventState = "raised" if new.value else "cleared"
            return Event(point.event, point.severity, state, self.device, point.name, new.value, new.quality, at)
        again = self.reassert and bool(point.alarm_when) and new.value in point.alarm_when
        if new.value == before and not again:
            return None
        severity: Severity = "alarm" if point.alarm_when and new.value in point.alarm_when else point.severity
        if point.alarm_when and severity != "alarm":
            severity = "info"
        detail: Detail = {"previous": before} if before is not None and before != new.value else {}
        return Event(point.event, severity, "changed", self.device, point.name, new.value, new.quality, at, detail)

    def failure(self, error: str, at: Stamp) -> Outcome:
        """A failed poll: counts towards offline; on the transition every point becomes `offline`."""
        out = Outcome()
        self.failures += 1
        self.last_error = error
        if self.online is False:
            return out
        if self.failures < self.offline_after_polls or at.mono - self.last_good_mono < self.offline_after_s:
            return out
        self.online = False
        self.reassert = True
        out.went_offline = True
        out.events.append(
            Event(
                "offline",
                "warning",
                "raised",
                self.device,
                "online",
                False,
                Quality.GOOD,
                at,
                {"error": error, "failures": self.failures},
            )
        )
        gone = PointValue(None, Quality.OFFLINE)
        for point in self.profile.points:
            out.readings.append(Reading(self.device, point.name, None, Quality.OFFLINE, at))
            self.reported[point.name] = gone
        return out
