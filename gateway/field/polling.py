"""Polling the devices of one Modbus bus, one transaction at a time.

Each device has a due time. The poller takes the device due first (fire panels and bollard controllers before
other devices due at the same moment), reads it, and schedules it again. A poll that fails even after its retries
puts the device on back-off at once, long before it counts as offline: from then on it is tried once per back-off
period (twice its interval, doubling up to `backoff_max_s`) with no retries, so a dead device costs the bus one
timeout per back-off period instead of every retry of every poll while the offline timer runs.

Each poll also has a slot: the start of the device's previous poll plus its interval (or back-off). A poll is on
time when it starts within `max(ON_TIME_MIN_S, ON_TIME_SHARE * interval)` of its slot. When the bus or the event
loop cannot keep up, polls start later than their slots and the devices are read less often than configured; the
share of polls on time per window of `[alarms] bus_window_s` says so in health and metrics, and a `trouble`
warning on the bus says which bus is behind and by how much. The schedule itself stays as it is under overload:
the device whose slot is oldest goes first, so every device gets its turn and none starves.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.device import ModbusDevice
from drivers.errors import BusError, DeviceError
from drivers.modbus import RequestPolicy
from drivers.profile import PointValue, Quality
from gateway.base.clock import Clock
from gateway.base.i18n import N_, both
from gateway.field.bus_load import LoadMonitor
from gateway.field.tracking import DeviceTracker
from gateway.store.recorder import Recorder
from gateway.store.records import Detail, Event, EventState, Stamp

log = logging.getLogger(__name__)

URGENT_MODELS = frozenset({"fire_panel", "bollard_controller"})
POINT_BEHIND = "polls_behind"
ON_TIME_MIN_S = 0.010  # a poll on time starts at most this long after its slot (asyncio's timer and a busy loop)
ON_TIME_SHARE = 0.10  # or this share of its interval, whichever is longer
BEHIND_BELOW = 0.90  # a window with a smaller share of its polls on time raises the warning
CAUGHT_UP_AT = 0.98  # and one with at least this share clears it (between the two, the verdict stands)


@dataclass(slots=True)
class PolledDevice:
    """A device with its schedule."""

    device: ModbusDevice
    tracker: DeviceTracker
    interval_s: float
    backoff_max_s: float
    backoff_s: float = 0.0
    polls: int = 0
    attempts_offline: int = 0
    last_values: dict[str, PointValue] | None = None  # the last good read; None until one, and after a failure
    last_read_mono: float = 0.0  # when the last good read ended
    last_read_started_mono: float = 0.0  # and when it began: its first block can be no older than this
    slot_mono: float = 0.0  # when the next poll is due by its interval (or back-off), however late it is taken
    urgent: bool = field(init=False)
    on_time_s: float = field(init=False)  # the lateness a poll may have and still count as on time

    def __post_init__(self) -> None:
        self.urgent = self.device.profile.model in URGENT_MODELS
        self.on_time_s = on_time_s(self.interval_s)


def on_time_s(interval_s: float) -> float:
    """How late a poll of a device polled every `interval_s` may start and still be on time."""
    return max(ON_TIME_MIN_S, ON_TIME_SHARE * interval_s)


@dataclass(slots=True)
class Punctuality:
    """Counts the polls of one bus that started on time, and judges each window of `window_s` by their share.

    Per poll it only updates counters; the verdict, and an event when it changes, come once per window. So at most
    one event per window: raised when fewer than `BEHIND_BELOW` of a window's polls were on time, cleared by a
    window with at least `CAUGHT_UP_AT`.
    """

    bus: str
    window_s: float
    clock: Clock
    on_change: Callable[[Event], None]
    behind: bool = False  # the verdict last announced (or a warning still open from before a restart)
    polls: int = 0  # since the start
    on_time: int = 0
    late_s: float = 0.0  # the lateness of the late polls, added up
    share: float | None = None  # of the last window's polls on time; None until a window has been judged
    late_mean_s: float | None = None  # the mean lateness of the last window's late polls; None when none was late
    _start: float = -1.0
    _mark: tuple[int, int, float] = (0, 0, 0.0)  # polls, on_time and late_s when the window began

    def polled(self, slot: float, started: float, on_time_s: float) -> None:
        """A poll due at `slot` started at `started` (monotonic seconds)."""
        if self._start < 0:
            self._start = started
        elif started - self._start >= self.window_s:
            self._judge(started)  # the window before this poll
        self.polls += 1
        late = started - slot
        if late <= on_time_s:
            self.on_time += 1
        else:
            self.late_s += late

    def _judge(self, now: float) -> None:
        polls, on_time, late_s = self.polls - self._mark[0], self.on_time - self._mark[1], self.late_s - self._mark[2]
        self.share = on_time / polls
        self.late_mean_s = late_s / (polls - on_time) if polls > on_time else None
        self._start, self._mark = now, (self.polls, self.on_time, self.late_s)
        verdict = self.share < BEHIND_BELOW if not self.behind else self.share < CAUGHT_UP_AT
        if verdict != self.behind:
            self.behind = verdict
            self.on_change(self._event(polls))

    def _event(self, polls: int) -> Event:
        share = f"{self.share:.0%}"
        late_ms = round((self.late_mean_s or 0.0) * 1000)
        text_en, text_zh = (
            both(N_("polls of bus {bus} behind schedule: {share} on time, typically {late_ms} ms late"),
                 bus=self.bus, share=share, late_ms=late_ms)
            if self.behind
            else both(N_("polls of bus {bus} on schedule again: {share} on time"), bus=self.bus, share=share)
        )  # fmt: skip
        detail: Detail = {
            "on_time_share": round(self.share or 0.0, 3),
            "late_mean_ms": None if self.late_mean_s is None else round(self.late_mean_s * 1000, 1),
            "polls": polls,
            "window_s": self.window_s,
            "text_en": text_en,
            "text_zh": text_zh,
        }
        log.warning("bus %s %s: %s of %d polls on time", self.bus,
                    "behind schedule" if self.behind else "on schedule again", share, polls)  # fmt: skip
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        state: EventState = "raised" if self.behind else "cleared"
        return Event("trouble", "warning", state, self.bus, POINT_BEHIND, self.behind, Quality.GOOD, stamp, detail)


class BusPoller:
    """Owns the schedule of one bus."""

    def __init__(self, name: str, devices: list[PolledDevice], recorder: Recorder, clock: Clock) -> None:
        self.name = name
        self.devices = devices
        self.recorder = recorder
        self.clock = clock
        self.on_poll: list[Callable[[PolledDevice], None]] = []
        self.load: LoadMonitor | None = None  # judges whether the bus meets the poll intervals (R24)
        self.punctuality: Punctuality | None = None  # counts the polls started on time

    def stamp(self) -> Stamp:
        """Now, on both clocks."""
        return Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())

    async def run(self) -> None:
        """Poll until cancelled."""
        now = self.clock.mono()
        queue: list[tuple[float, int, int]] = [(now, 0 if d.urgent else 1, i) for i, d in enumerate(self.devices)]
        heapq.heapify(queue)
        for d in self.devices:
            d.slot_mono = now
        while queue:
            due, rank, i = heapq.heappop(queue)
            delay = due - self.clock.mono()
            if delay > 0:
                await asyncio.sleep(delay)
            entry = self.devices[i]
            started = self.clock.mono()
            if self.punctuality is not None:
                self.punctuality.polled(entry.slot_mono, started, entry.on_time_s)
            backed_off = entry.backoff_s > 0
            await self.poll_once(entry)
            if self.load is not None:
                backed_off |= entry.backoff_s > 0
                self.load.polled(entry.device.name, entry.interval_s, started, self.clock.mono(), backed_off)
            for listener in self.on_poll:
                listener(entry)
            entry.slot_mono = started + (entry.backoff_s or entry.interval_s)
            heapq.heappush(queue, (max(entry.slot_mono, self.clock.mono()), rank, i))

    async def poll_once(self, entry: PolledDevice) -> None:
        """Read one device and record what changed."""
        dev = entry.device
        failing = entry.backoff_s > 0
        policy = RequestPolicy(dev.policy.timeout_s, 0) if failing else None
        entry.polls += 1
        if entry.tracker.online is False:
            entry.attempts_offline += 1
        started = self.clock.mono()
        try:
            values = await dev.read(policy)
        except (DeviceError, BusError) as exc:
            entry.last_values = None
            outcome = entry.tracker.failure(str(exc), self.stamp())
            if outcome.went_offline:
                log.warning("device %s offline: %s", dev.name, exc)
            ceiling = max(entry.backoff_max_s, entry.interval_s)
            entry.backoff_s = min(ceiling, entry.backoff_s * 2 if failing else entry.interval_s * 2)
            self.recorder.record(outcome.readings, outcome.events, dev.name, False if outcome.went_offline else None)
            return
        entry.last_values = values
        entry.last_read_mono = self.clock.mono()
        entry.last_read_started_mono = started
        outcome = entry.tracker.update(values, self.stamp())
        if outcome.came_online:
            log.warning("device %s back online", dev.name)
        entry.backoff_s = 0.0
        self.recorder.record(outcome.readings, outcome.events, dev.name, True)
