"""(d) RS-485 scheduling with line timing: how close polling gets to what the wire allows at 9600 baud.

The simulator delays each reply by the wire time of the request and the reply (SimServer.rtu(line_timing=True)),
so the gateway sees real transaction times on a pseudo-terminal. Four smoke detectors (one 11-register block each)
polled as fast as the bus allows; the same with a fifth, dead detector on the line; and a one-off read of a
bollard controller on the same line (the transaction a bollard command will be), whose wait for the bus is counted
in transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench import rig
from drivers.modbus import RequestPolicy, rtu_read_s
from gateway.base.clock import Clock
from gateway.config import parse_config
from gateway.service.app import Gateway
from simulators.bollard import BollardSim
from simulators.devices import SimDevice, SmokeDetectorSim
from simulators.modbus_server import SimServer
from simulators.pty import PtyPair

BAUD = 9600
BITS = 10
SMOKE_REGISTERS = 11
DETECTORS = (11, 12, 13, 14)
DEAD = 20
BOLLARD = 30
BACKOFF_MAX_S = 2.0


def wire_limit_per_s(registers: int, baud: int = BAUD) -> float:
    """Transactions/s the wire allows for FC04 reads of `registers`: 8 + 5 + 2N bytes and two t3.5 gaps."""
    return 1 / rtu_read_s(4, registers, baud, BITS)


async def _measure(workdir: Path, window_s: float, dead: bool, broker_url: str) -> dict[str, Any]:
    devices: dict[int, SimDevice] = {u: SmokeDetectorSim() for u in DETECTORS}
    devices[BOLLARD] = BollardSim()
    if dead:
        devices[DEAD] = SmokeDetectorSim()
        devices[DEAD].faults.silent = True
    units = [*DETECTORS, DEAD] if dead else list(DETECTORS)
    async with contextlib.AsyncExitStack() as stack:
        pair = await stack.enter_async_context(PtyPair(workdir / "gw-end", workdir / "dev-end"))
        await stack.enter_async_context(SimServer.rtu(devices, str(pair.device_end), BAUD, line_timing=True))
        bus = f'[[buses]]\nid = "rs485"\ntype = "rtu"\nport = "{pair.gateway_end}"\nbaud = {BAUD}\ntimeout_ms = 200\n'
        table = [
            f'[[devices]]\nid = "smoke-{u}"\nbus = "rs485"\nunit = {u}\nprofile = "smoke_detector"\n'
            f"poll_interval_s = 0.01\nbackoff_max_s = {BACKOFF_MAX_S}\n"
            for u in units
        ]
        text = rig.site_config(workdir / "state", broker_url, [bus], table)
        gw = Gateway(parse_config(text, "bench.toml"), clock=Clock())
        task = asyncio.create_task(gw.run())
        try:
            await gw.started.wait()
            await asyncio.sleep(12.0 if dead else 2.0)  # warm up; the dead one reaches its longest back-off
            stats = gw.buses["rs485"].stats
            before = {u: stats[u].requests if u in stats else 0 for u in units}
            began = time.monotonic()
            waits = []
            line = gw.buses["rs485"]
            policy = RequestPolicy(0.5, 0)
            while time.monotonic() - began < window_s:
                await asyncio.sleep(random.uniform(0.3, 0.7))
                asked = time.monotonic()
                await line.read(BOLLARD, 4, 0, 15, policy)  # the status a command reads before it acts
                waits.append(time.monotonic() - asked)
            elapsed = time.monotonic() - began
            after = {u: stats[u].requests for u in units}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    polls = {u: after[u] - before[u] for u in units}
    live = sum(polls[u] for u in DETECTORS)
    transaction_s = 1 / wire_limit_per_s(SMOKE_REGISTERS)
    bollard_own_s = 1 / wire_limit_per_s(15)
    waited = [max(0.0, w - bollard_own_s) / transaction_s for w in waits]
    out: dict[str, Any] = {
        "transactions_per_s": round((live + len(waits)) / elapsed, 2),
        "bollard_wait_transactions": {
            "median": round(statistics.median(waited), 2) if waited else None,
            "max": round(max(waited), 2) if waited else None,
            "reads": len(waits),
        },
    }
    if dead:
        out["dead_requests"] = polls[DEAD]
        out["requests_per_backoff_period"] = round(polls[DEAD] / (elapsed / BACKOFF_MAX_S), 2)
    return out


def run(workdir: Path, window_s: float = 30.0) -> dict[str, Any]:
    """Saturated polling without and with a dead device; the share of the wire-time limit achieved."""
    workdir.mkdir(parents=True, exist_ok=True)
    limit = wire_limit_per_s(SMOKE_REGISTERS)
    with rig.broker(workdir) as broker:
        healthy = asyncio.run(_measure(workdir / "healthy", window_s, False, broker.url))
        with_dead = asyncio.run(_measure(workdir / "dead", window_s, True, broker.url))
    return {
        "load": {"baud": BAUD, "bits_per_char": BITS, "detectors": len(DETECTORS), "registers": SMOKE_REGISTERS},
        "wire_limit_per_s": round(limit, 2),
        "transactions_per_s": healthy["transactions_per_s"],
        "share_of_wire_limit_pct": round(healthy["transactions_per_s"] / limit * 100, 1),
        "bollard_wait_transactions": healthy["bollard_wait_transactions"],
        "dead_device": {
            "transactions_per_s": with_dead["transactions_per_s"],
            "share_of_wire_limit_pct": round(with_dead["transactions_per_s"] / limit * 100, 1),
            "requests": with_dead["dead_requests"],
            "requests_per_backoff_period": with_dead["requests_per_backoff_period"],
            "bollard_wait_transactions": with_dead["bollard_wait_transactions"],
        },
    }
