"""The fault harness at CI size: 50 gateway kills, 20 broker kills, 20 corrupt stores; nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import FaultNet, broker_kills, corrupt_stores, gateway_kills, partitions, report

pytestmark = pytest.mark.slow


async def test_faults_gateway_kill_9_loses_nothing(tmp_path: Path) -> None:
    """kill -9 at 50 random moments: every committed seq arrives, the store passes integrity_check each time."""
    result = await gateway_kills(tmp_path, kills=50, seed=2026)
    print(report([result]))
    assert result.faults == 50
    assert result.passed, report([result])


async def test_faults_broker_kill_9_loses_nothing_and_alarms_lead(tmp_path: Path) -> None:
    """kill -9 of the broker 20 times with a fire toggled in each outage: no loss, the alarm first after each heal."""
    result = await broker_kills(tmp_path, kills=20, seed=2026)
    print(report([result]))
    assert result.heals == 20
    assert result.passed, report([result])


async def test_faults_corrupt_store_variants_never_crash_loop(tmp_path: Path) -> None:
    """20 seeded kinds of damage to the store: the gateway starts each time; what was lost is declared."""
    result = await corrupt_stores(tmp_path, variants=20, seed=2026)
    print(report([result]))
    assert result.faults == 20
    assert result.passed, report([result])


async def test_faults_network_cuts_and_loss_lose_nothing(tmp_path: Path) -> None:
    """Cuts of 1, 3, 10 and 60 s between gateway and broker (own network namespaces), then 20 % packet loss."""
    why = FaultNet.available()
    if why is not None:
        pytest.skip(why)
    result = await partitions(tmp_path, [1, 3, 10, 60], loss_s=10, seed=2026)
    print(report([result]))
    assert result.heals == 4
    assert result.passed, report([result])
