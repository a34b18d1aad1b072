"""Polling the devices of one Modbus bus, one transaction at a time.

Each device has a due time. The poller takes the device due first (fire panels and bollard controllers before
other devices due at the same moment), reads it, and schedules it again. A poll that fails even after its retries
puts the device on back-off at once, long before it counts as offline: from then on it is tried once per back-off
period (twice its interval, doubling up to `backoff_max_s`) with no retries, so a dead device costs the bus one
timeout per back-off period instead of every retry of every poll while the offline timer runs.
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
from drivers.profile import PointValue
from gateway.base.clock import Clock
from gateway.field.bus_load import LoadMonitor
from gateway.field.tracking import DeviceTracker
from gateway.store.recorder import Recorder
from gateway.store.records import Stamp

log = logging.getLogger(__name__)

URGENT_MODELS = frozenset({"fire_panel", "bollard_controller"})


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
    urgent: bool = field(init=False)

    def __post_init__(self) -> None:
        self.urgent = self.device.profile.model in URGENT_MODELS


class BusPoller:
    """Owns the schedule of one bus."""

    def __init__(self, name: str, devices: list[PolledDevice], recorder: Recorder, clock: Clock) -> None:
        self.name = name
        self.devices = devices
        self.recorder = recorder
        self.clock = clock
        self.on_poll: list[Callable[[PolledDevice], None]] = []
        self.load: LoadMonitor | None = None  # judges whether the bus meets the poll intervals (R24)

    def stamp(self) -> Stamp:
        """Now, on both clocks."""
        return Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())

    async def run(self) -> None:
        """Poll until cancelled."""
        now = self.clock.mono()
        queue: list[tuple[float, int, int]] = [(now, 0 if d.urgent else 1, i) for i, d in enumerate(self.devices)]
        heapq.heapify(queue)
        while queue:
            due, rank, i = heapq.heappop(queue)
            delay = due - self.clock.mono()
            if delay > 0:
                await asyncio.sleep(delay)
            entry = self.devices[i]
            started = self.clock.mono()
            backed_off = entry.backoff_s > 0
            await self.poll_once(entry)
            if self.load is not None:
                backed_off |= entry.backoff_s > 0
                self.load.polled(entry.device.name, entry.interval_s, started, self.clock.mono(), backed_off)
            for listener in self.on_poll:
                listener(entry)
            wait = entry.backoff_s or entry.interval_s
            heapq.heappush(queue, (max(started + wait, self.clock.mono()), rank, i))

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
