"""Whether a Modbus bus can meet its devices' poll intervals (R24): estimated at config load, then measured.

The estimate adds up, per RS-485 line, the wire time of every block each device is polled for (devices.md section 5)
plus an allowance for the device's own time to answer, divided by its poll interval: above 100 % the line cannot
meet every interval however the polls are ordered. It is what `campus-edge check` shows and what the gateway says
at start. The measurement then judges the bus by what polling really took, one window at a time: overloaded when
the bus was busy most of the window *and* a device (not on back-off) was polled markedly less often than its
interval asks. A gateway short of CPU has late devices and an idle bus, so it is not taken for an overloaded line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from drivers.modbus import rtu_bits_per_char, rtu_read_s
from drivers.profile import Profile, Quality
from gateway.base.clock import Clock
from gateway.base.i18n import N_, both
from gateway.config import RtuBusConfig
from gateway.store.records import Detail, Event, EventState, Stamp

log = logging.getLogger(__name__)

POINT = "bus_overloaded"
BUSY_AT = 0.8  # the share of a window the bus spent in transactions before lateness is laid at its door
LATE_BY = 1.25  # a device polled on average this much less often than its interval misses it


@dataclass(frozen=True, slots=True)
class DeviceDemand:
    """What one device asks of its line."""

    device: str
    interval_s: float
    poll_s: float  # the wire time of one poll (every block) plus the answer allowance per block

    @property
    def share(self) -> float:
        return self.poll_s / self.interval_s


@dataclass(frozen=True, slots=True)
class BusEstimate:
    """The computed load of one RS-485 line."""

    bus: str
    baud: int
    bits_per_char: int
    reply_latency_s: float
    devices: tuple[DeviceDemand, ...]

    @property
    def load(self) -> float:
        """The share of the line's time the configured polling needs; above 1 it cannot be met."""
        return sum(d.share for d in self.devices)

    @property
    def overloaded(self) -> bool:
        return self.load > 1.0

    def summary(self) -> str:
        heavy = sorted(self.devices, key=lambda d: d.share, reverse=True)[:3]
        parts = ", ".join(f"{d.device} {d.poll_s * 1000:.0f} ms every {d.interval_s:g} s" for d in heavy)
        return f"bus {self.bus}: {self.load:.0%} of {self.baud} baud needed ({parts})"


def estimate(bus: RtuBusConfig, devices: Iterable[tuple[str, Profile, float]]) -> BusEstimate:
    """The load on one RS-485 line of polling each (device, profile, poll interval)."""
    bits = rtu_bits_per_char(bus.parity, bus.stopbits)
    latency = bus.reply_latency_ms / 1000
    demands = tuple(
        DeviceDemand(
            name, interval, sum(rtu_read_s(b.function, b.count, bus.baud, bits) + latency for b in profile.blocks)
        )
        for name, profile, interval in devices
    )
    return BusEstimate(bus.id, bus.baud, bits, latency, demands)


@dataclass(slots=True)
class _Polls:
    interval_s: float
    count: int = 0
    backed_off: bool = False


@dataclass(slots=True)
class LoadMonitor:
    """Judges one bus window by window from its polls, and says when the verdict changes."""

    bus: str
    window_s: float
    clock: Clock
    on_change: Callable[[Event], None]
    overloaded: bool = False  # the verdict last announced (the estimate's, or an alarm still open from before)
    estimate: BusEstimate | None = None
    _start: float = field(default=-1.0)
    _busy_s: float = 0.0
    _polls: dict[str, _Polls] = field(default_factory=dict)

    def polled(self, device: str, interval_s: float, started: float, ended: float, backed_off: bool) -> None:
        """One poll of `device` took the bus from `started` to `ended` (monotonic seconds)."""
        if self._start < 0:
            self._start = started
        self._busy_s += ended - started
        polls = self._polls.setdefault(device, _Polls(interval_s))
        polls.count += 1
        polls.backed_off |= backed_off
        if ended - self._start >= self.window_s:
            self._judge(ended)

    def _judge(self, now: float) -> None:
        span = now - self._start
        busy = min(1.0, self._busy_s / span)
        late = {
            name: span / p.count
            for name, p in self._polls.items()
            if not p.backed_off and span / p.count > p.interval_s * LATE_BY
        }
        verdict = busy >= BUSY_AT and bool(late)
        if verdict != self.overloaded:
            self.overloaded = verdict
            self.on_change(self._event(verdict, busy, late))
        self._start, self._busy_s = now, 0.0
        self._polls = {}

    def _event(self, overloaded: bool, busy: float, late: dict[str, float]) -> Event:
        wanted = {name: p.interval_s for name, p in self._polls.items()}
        missed = ", ".join(f"{n} {wanted[n]:g} s -> {got:.2f} s" for n, got in sorted(late.items()))
        text_en, text_zh = (
            both(N_("bus overloaded: devices polled less often than configured: {late}"), late=missed)
            if overloaded
            else both(N_("bus meets its poll intervals again"))
        )
        detail: Detail = {
            "source": "measured",
            "busy": round(busy, 3),
            "window_s": self.window_s,
            "late_devices": missed or None,
            "estimated_load": None if self.estimate is None else round(self.estimate.load, 3),
            "text_en": text_en,
            "text_zh": text_zh,
        }
        log.warning("bus %s %s (busy %.0f%%) %s", self.bus, "overloaded" if overloaded else "no longer overloaded",
                    busy * 100, missed)  # fmt: skip
        return _event(self.bus, overloaded, self.clock, detail)


def estimate_event(est: BusEstimate, clock: Clock) -> Event:
    """The warning the gateway raises at start for a line its configuration overloads."""
    heavy = ", ".join(f"{d.device} {d.poll_s * 1000:.0f} ms / {d.interval_s:g} s" for d in est.devices)
    text_en, text_zh = both(
        N_("bus overloaded: polling needs {load} of the line ({devices})"), load=f"{est.load:.0%}", devices=heavy
    )
    detail: Detail = {
        "source": "computed",
        "estimated_load": round(est.load, 3),
        "baud": est.baud,
        "reply_latency_ms": round(est.reply_latency_s * 1000),
        "text_en": text_en,
        "text_zh": text_zh,
    }
    return _event(est.bus, True, clock, detail)


def _event(bus: str, overloaded: bool, clock: Clock, detail: Detail) -> Event:
    stamp = Stamp(clock.wall_ms(), clock.mono(), clock.synced())
    state: EventState = "raised" if overloaded else "cleared"
    return Event("maintenance", "warning", state, bus, POINT, overloaded, Quality.GOOD, stamp, detail)
