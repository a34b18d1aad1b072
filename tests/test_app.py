"""The composition of one running gateway: what its start opens is closed again, also when the start fails."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.exc import GPIOPinInUse

from gateway.base.clock import Clock
from gateway.service.app import Gateway
from gateway.store.outbox import Outbox
from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_app_start_failing_at_a_late_part_leaves_nothing_open(
    tmp_path: Path, broker: PrivateBroker, pin_factory: Any
) -> None:
    """A pin taken by another program: the start fails with its error; the first pin, bus and outbox are closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = int(s.getsockname()[1])
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: FirePanelSim()}, tmp_path, stack)
        await bus.__aexit__(None, None, None)  # the gateway opens its own
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "line", **endpoint}],
            [{"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            [{"id": "door-main", "pin": 17, "kind": "door"}, {"id": "door-side", "pin": 27, "kind": "door"}],
            mqtt_extra=f"\n[health]\nmetrics_port = {metrics_port}\n",
        )
        gw = Gateway(make_config(text), pin_factory=pin_factory, clock=Clock(assume_synced=True))
        other = DigitalInputDevice(27, pin_factory=pin_factory)  # someone else's: door-side cannot have it
        try:
            with pytest.raises(GPIOPinInUse) as failed:
                async with asyncio.timeout(10):
                    await gw.run()
        finally:
            other.close()
    assert str(failed.value) == (
        "pin GPIO27 is already in use by <gpiozero.DigitalInputDevice object on pin GPIO27, pull_up=False, "
        "is_active=False>"
    )
    assert not gw.started.is_set()
    DigitalInputDevice(17, pin_factory=pin_factory).close()  # door-main's pin was released
    with pytest.raises(sqlite3.ProgrammingError, match=r"^Cannot operate on a closed database\.$"):
        gw.outbox.depth()
    assert not (tmp_path / "state" / "outbox.db-wal").exists()  # no connection left: the WAL was folded in
    assert not gw.buses["line"]._client.connected
    assert _port_free(metrics_port)
    with Outbox(tmp_path / "state" / "outbox.db") as outbox:  # door-main's first reading was committed on the way
        rows = [row for priority in range(3) for row in outbox.fetch(priority, 0, 100)]
    assert any('"door-main"' in row.body for row in rows)
