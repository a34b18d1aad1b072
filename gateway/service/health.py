"""The gateway's own health, sampled from its live parts: for `.../health`, the metrics endpoint and systemd.

One sample gathers what an installer or the platform's operators need to judge a gateway from afar: whether the
link is up, how much waits in the outbox and for how long, how each Modbus device answers (requests, timeouts,
CRC errors, exception replies by code, latency), the free space of the state directory, the CPU temperature where
the board has a sensor, the uptime, the share of each bus's polls made on time (an overloaded bus or event loop
polls less often than configured, and says so here), the guards' panel's refused sign-ins (someone guessing PINs
shows here long before a lock-out event), and how often each long-running part failed and was restarted. Counters
run from the gateway's start (a new `boot_id` starts them again).

Health goes out retained, QoS 1, through the state board like a device's state, not through the outbox: the next
sample supersedes it, so a backlog of old samples after an outage is worth nothing and must not take the outbox's
room from alarms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.modbus import ModbusBus
from gateway.base.clock import Clock, rfc3339_ms
from gateway.base.contract import SCHEMA_HEALTH, Topics
from gateway.field.polling import Punctuality
from gateway.store.outbox import Outbox
from gateway.store.stateboard import StateBoard
from gateway.uplink.link import Uplink

if TYPE_CHECKING:
    from gateway.panel.auth import SignInCounts  # not imported at run time: the module hashes a PIN when loaded

log = logging.getLogger(__name__)

THERMAL_DIR = Path("/sys/class/thermal")


@dataclass(frozen=True, slots=True)
class ModbusHealth:
    """One Modbus device's transaction counters since the start, and its recent latency quantiles."""

    device: str
    bus: str
    unit: int
    requests: int
    timeouts: int
    crc_errors: int
    malformed: int
    exceptions: dict[int, int]
    latency_p50_s: float | None
    latency_p95_s: float | None


@dataclass(frozen=True, slots=True)
class PollingHealth:
    """One bus's polls since the start, and how its last window kept to the schedule."""

    bus: str
    polls: int
    on_time: int
    window_s: float
    on_time_share: float | None  # of the last window's polls; None until a window has been judged
    late_mean_s: float | None  # the mean lateness of the last window's late polls; None when none was late
    behind: bool  # the bus's polls_behind warning is raised


@dataclass(frozen=True, slots=True)
class HealthSample:
    """What the gateway knows of itself at `wall_ms`."""

    wall_ms: int
    clock_synced: bool
    uptime_s: float
    link_up: bool
    link_connections: int
    link_failures: int
    outbox_depth: int
    outbox_oldest_age_s: float | None
    outbox_bytes: int
    outbox_evicted_rows: int
    state_dir_free_bytes: int | None
    cpu_temperature_c: float | None
    modbus: tuple[ModbusHealth, ...]
    sign_ins: SignInCounts | None = None  # None without a panel
    tasks: dict[str, int] = field(default_factory=dict)  # restarts by part (the supervisor's name), 0: never failed
    polling: tuple[PollingHealth, ...] = ()  # each bus, in configuration order


def cpu_temperature_c(thermal_dir: Path = THERMAL_DIR) -> float | None:
    """The CPU's temperature in °C from the kernel's thermal zones (the one typed cpu, else the first that reads);
    None where the board has none (most containers and PCs without the driver)."""
    zones = sorted(thermal_dir.glob("thermal_zone*"), key=lambda p: p.name.removeprefix("thermal_zone").zfill(4))
    readings: list[tuple[bool, float]] = []
    for zone in zones:
        try:
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            kind = (zone / "type").read_text().strip().lower()
        except OSError:
            kind = ""
        readings.append(("cpu" in kind or "soc" in kind, round(millidegrees / 1000, 1)))
    for is_cpu, celsius in readings:
        if is_cpu:
            return celsius
    return readings[0][1] if readings else None


class HealthSampler:
    """Reads the live numbers of a gateway's parts; cheap enough for every scrape and every watchdog ping."""

    def __init__(
        self,
        outbox: Outbox,
        uplink: Uplink,
        clock: Clock,
        state_dir: Path,
        devices: Sequence[tuple[str, ModbusBus, int]],
        thermal_dir: Path = THERMAL_DIR,
        restarts: Callable[[], Mapping[str, int]] | None = None,
        punctuality: Sequence[Punctuality] = (),
    ) -> None:
        self.outbox = outbox
        self.uplink = uplink
        self.clock = clock
        self.state_dir = state_dir
        self.devices = tuple(devices)  # (device id, its bus, its unit)
        self.thermal_dir = thermal_dir
        self.restarts = restarts  # the supervisor's counts, read at each sample
        self.punctuality = tuple(punctuality)  # each bus's poller's
        self.started_mono = clock.mono()
        self.sign_ins: SignInCounts | None = None  # the panel's, once it is made

    def modbus(self) -> tuple[ModbusHealth, ...]:
        """Each Modbus device's counters, in configuration order."""
        out = []
        for device, bus, unit in self.devices:
            st = bus.stats.get(unit)
            if st is None:
                out.append(ModbusHealth(device, bus.name, unit, 0, 0, 0, 0, {}, None, None))
                continue
            out.append(
                ModbusHealth(
                    device,
                    bus.name,
                    unit,
                    st.requests,
                    st.timeouts,
                    st.crc_errors,
                    st.malformed,
                    dict(sorted(st.exceptions.items())),
                    st.latency_quantile(0.5),
                    st.latency_quantile(0.95),
                )
            )
        return tuple(out)

    def polling(self) -> tuple[PollingHealth, ...]:
        """Each bus's punctuality."""
        return tuple(
            PollingHealth(p.bus, p.polls, p.on_time, p.window_s, p.share, p.late_mean_s, p.behind)
            for p in self.punctuality
        )

    def sample(self) -> HealthSample:
        """Everything at once."""
        wall = self.clock.wall_ms()
        oldest = self.outbox.oldest_created_ms()
        try:
            free: int | None = shutil.disk_usage(self.state_dir).free
        except OSError:
            free = None
        return HealthSample(
            wall_ms=wall,
            clock_synced=self.clock.synced(),
            uptime_s=round(self.clock.mono() - self.started_mono, 3),
            link_up=self.uplink.connected.is_set(),
            link_connections=self.uplink.connections,
            link_failures=self.uplink.failures,
            outbox_depth=self.outbox.depth(),
            # Wall time on both sides: a clock stepped back by NTP after a cold start must not read negative.
            outbox_oldest_age_s=None if oldest is None else max(0.0, (wall - oldest) / 1000),
            outbox_bytes=self.outbox.bytes,
            outbox_evicted_rows=self.outbox.health.evicted_rows,
            state_dir_free_bytes=free,
            cpu_temperature_c=cpu_temperature_c(self.thermal_dir),
            modbus=self.modbus(),
            sign_ins=None if self.sign_ins is None else dataclasses.replace(self.sign_ins),
            tasks={} if self.restarts is None else dict(self.restarts()),
            polling=self.polling(),
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _panel(counts: SignInCounts | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return {"sign_ins_refused": counts.refused, "wrong_pins": counts.wrong_pins, "lockouts": counts.lockouts}


def health_payload(topics: Topics, sample: HealthSample, boot_id: str, interval_s: float) -> bytes:
    """The `.../health` message (docs/contract/schemas/health.schema.json)."""
    body = {
        "ts": rfc3339_ms(sample.wall_ms),
        "clock_synced": sample.clock_synced,
        "boot_id": boot_id,
        "interval_s": interval_s,
        "uptime_s": sample.uptime_s,
        "link": {
            "up": sample.link_up,
            "connections": sample.link_connections,
            "failures": sample.link_failures,
        },
        "outbox": {
            "depth": sample.outbox_depth,
            "oldest_age_s": sample.outbox_oldest_age_s,
            "bytes": sample.outbox_bytes,
            "evicted_rows": sample.outbox_evicted_rows,
        },
        "state_dir_free_bytes": sample.state_dir_free_bytes,
        "cpu_temperature_c": sample.cpu_temperature_c,
        "modbus": [
            {
                "device": m.device,
                "bus": m.bus,
                "unit": m.unit,
                "requests": m.requests,
                "timeouts": m.timeouts,
                "crc_errors": m.crc_errors,
                "malformed": m.malformed,
                "exceptions": {str(code): n for code, n in m.exceptions.items()},
                "latency_p50_ms": _ms(m.latency_p50_s),
                "latency_p95_ms": _ms(m.latency_p95_s),
            }
            for m in sample.modbus
        ],
        "panel": _panel(sample.sign_ins),
        "tasks": sample.tasks,
        "polling": [
            {
                "bus": p.bus,
                "polls": p.polls,
                "on_time": p.on_time,
                "window_s": p.window_s,
                "on_time_share": None if p.on_time_share is None else round(p.on_time_share, 3),
                "late_mean_ms": _ms(p.late_mean_s),
                "behind": p.behind,
            }
            for p in sample.polling
        ],
    }
    return (topics.head(SCHEMA_HEALTH) + json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:]).encode()


def status_line(sample: HealthSample) -> str:
    """One line for `systemctl status`: the link, the outbox, the devices that are not answering well."""
    parts = [f"link {'up' if sample.link_up else 'down'}", f"outbox {sample.outbox_depth} waiting"]
    if sample.outbox_oldest_age_s is not None and sample.outbox_oldest_age_s >= 1:
        parts[-1] += f" (oldest {sample.outbox_oldest_age_s:.0f} s)"
    silent = [m.device for m in sample.modbus if m.requests and m.latency_p50_s is None]
    if silent:
        parts.append(f"no answer from {', '.join(silent[:3])}" + (" ..." if len(silent) > 3 else ""))
    if sample.cpu_temperature_c is not None:
        parts.append(f"CPU {sample.cpu_temperature_c:.0f} °C")
    return ", ".join(parts)


async def publish_health(
    sampler: HealthSampler, board: StateBoard, topics: Topics, boot_id: str, interval_s: float
) -> None:
    """Put a fresh sample on the state board every `interval_s`; the uplink publishes it retained."""
    while True:
        board.set_retained(topics.health, health_payload(topics, sampler.sample(), boot_id, interval_s))
        await asyncio.sleep(interval_s)
