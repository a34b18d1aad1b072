"""Per-device transaction counters of a bus (TransactionStats): what health telemetry reports of each device."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from drivers.errors import DeviceException, DeviceTimeout, MalformedReply
from drivers.modbus import LATENCY_WINDOW, RequestPolicy, TransactionStats
from simulators.devices import FirePanelSim
from tests.conftest import open_sim_bus

POLICY = RequestPolicy(timeout_s=0.5, retries=2)


@pytest.mark.parametrize("transport", ["tcp", "rtu-pty"])
async def test_modbus_stats_count_replies_timeouts_and_exceptions(transport: str, tmp_path: Path) -> None:
    """Answered reads give latencies, a dropped reply a timeout, an exception reply its code; CRC stays at 0."""
    panel = FirePanelSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        await bus.read(1, 4, 0, 2, POLICY)
        panel.faults.drop_next_replies = 1
        await bus.read(1, 4, 0, 2, POLICY)  # the retry answers
        panel.faults.exception_next = 4
        with pytest.raises(DeviceException):
            await bus.read(1, 4, 0, 2, POLICY)
        stats = bus.stats[1]
    assert (stats.requests, stats.timeouts, stats.crc_errors, stats.exceptions) == (4, 1, 0, {4: 1})
    assert len(stats.latencies_s) == 3  # the two answered reads and the exception reply
    p50, p95 = stats.latency_quantile(0.5), stats.latency_quantile(0.95)
    assert p50 is not None
    assert p95 is not None
    assert 0 < p50 <= p95


async def test_modbus_stats_count_crc_errors_on_rtu(tmp_path: Path) -> None:
    """A reply with a wrong CRC is dropped by the framing, counted as a CRC error and as a timeout."""
    panel = FirePanelSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus("rtu-pty", {1: panel}, tmp_path, stack)
        panel.faults.corrupt_next_crc = 3
        with pytest.raises(DeviceTimeout):
            await bus.read(1, 4, 0, 2, POLICY)
        await bus.read(1, 4, 0, 2, POLICY)
        stats = bus.stats[1]
    assert (stats.requests, stats.timeouts, stats.crc_errors) == (4, 3, 3)


@pytest.mark.parametrize("transport", ["tcp", "rtu-pty"])
@pytest.mark.parametrize(
    ("fault", "reason"), [("wrong_unit_next", "a reply from unit 2"), ("truncate_next", "a reply cut short")]
)
async def test_modbus_stats_count_wrong_unit_and_cut_short_replies_as_malformed(
    transport: str, tmp_path: Path, fault: str, reason: str
) -> None:
    """A reply from another unit and a reply cut short are malformed, not timeouts: the device answered, wrongly.
    Retried like no reply; when every attempt gets one, the error says what came."""
    panel = FirePanelSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        setattr(panel.faults, fault, 1)
        await bus.read(1, 4, 0, 2, POLICY)  # the retry answers
        setattr(panel.faults, fault, 3)
        with pytest.raises(MalformedReply) as err:
            await bus.read(1, 4, 0, 2, POLICY)
        stats = bus.stats[1]
    assert str(err.value) == f"bus line unit 1: FC04 register 0: {reason}"
    assert (stats.requests, stats.timeouts, stats.malformed, stats.crc_errors) == (5, 0, 4, 0)


def test_modbus_stats_latency_window_keeps_the_recent() -> None:
    """Quantiles are taken over the last LATENCY_WINDOW replies; none before the first."""
    stats = TransactionStats()
    assert stats.latency_quantile(0.5) is None
    for _ in range(LATENCY_WINDOW):
        stats.latencies_s.append(1.0)
    for _ in range(LATENCY_WINDOW):
        stats.latencies_s.append(0.01)
    assert stats.latency_quantile(0.95) == 0.01
