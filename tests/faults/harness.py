"""A fault harness with an oracle: it breaks things and accounts for every sequence number.

The gateway runs as its own process (`campus-edge run`), so that `kill -9` is real. Devices are simulated in the
harness process over Modbus TCP; a smoke wave keeps telemetry flowing and a fire panel toggles fire during each
outage, so that every heal has an alarm to deliver ahead of the backlog. A platform-side watcher (the same code as
`campus-edge watch`, with a persistent session) records what arrives and in which order.

Oracle, at the end, from the gateway's own store: committed = 1..last_seq. lost = committed numbers neither
received nor inside a declared gap; unexpected = received numbers above last_seq; duplicates and reordered are
counted as they arrive. Pass: lost = 0, unexpected = 0, every integrity check ok, an alarm first after each heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.watch import Watcher, watch
from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim, SmokeDetectorSim
from simulators.modbus_server import SimServer
from tests.gateway_harness import config_text

SITE = "test-school"
GATEWAY = "gw-1"


@dataclass
class Arrival:
    """One seq-carrying message as it arrived at the platform."""

    seq: int
    alarm: bool


@dataclass
class Result:
    """One scenario's accounting."""

    scenario: str
    faults: int = 0
    committed: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    unexpected: int = 0
    reordered: int = 0
    declared: int = 0
    integrity_failures: int = 0
    heals: int = 0
    alarm_first: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.unexpected == 0
            and self.integrity_failures == 0
            and self.alarm_first == self.heals
            and self.committed > 0
        )

    def row(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (
            f"| {self.scenario} | {self.faults} | {self.committed} | {self.received} | {self.lost} | "
            f"{self.duplicates} | {self.unexpected} | {self.reordered} | {self.declared} | "
            f"{self.integrity_failures} | {self.alarm_first}/{self.heals} | {self.seconds:.0f} | {verdict} |"
        )


HEADER = (
    "| scenario | faults | committed | received | lost | duplicates | unexpected | reordered | declared gaps "
    "| integrity failures | alarm first after heal | s | verdict |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


class Rig:
    """Simulated devices, a broker, a watcher, and the gateway as a killable process."""

    def __init__(self, workdir: Path, rng: random.Random) -> None:
        self.workdir = workdir
        self.rng = rng
        self.panel = FirePanelSim()
        self.smoke = SmokeDetectorSim()
        self.broker = PrivateBroker(workdir / "broker")
        self.state = workdir / "state"
        self.proc: asyncio.subprocess.Process | None = None
        self.watcher = Watcher(SITE, GATEWAY, out=io.StringIO())
        self.arrivals: list[Arrival] = []
        self._stack = contextlib.AsyncExitStack()
        self._fire_point = 0

    async def __aenter__(self) -> Rig:
        self.broker.start()
        server = await self._stack.enter_async_context(SimServer.tcp({1: self.panel, 2: self.smoke}))
        host, port = server.address
        text = config_text(
            self.state, self.broker.url, [{"id": "tcp-1", "type": "tcp", "host": host, "port": port}],
            [
                {"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.05},
                {"id": "smoke-1", "bus": "tcp-1", "unit": 2, "profile": "smoke_detector", "poll_interval_s": 0.02},
            ],
        )  # fmt: skip
        self.config = self.workdir / "gateway.toml"
        self.config.write_text(text)
        orig = self.watcher.handle

        def handle(topic: str, raw: bytes) -> None:
            orig(topic, raw)
            with contextlib.suppress(ValueError, KeyError):
                p = json.loads(raw)
                if "readings" in p:
                    self.arrivals += [Arrival(r["seq"], False) for r in p["readings"]]
                elif "seq" in p:
                    self.arrivals.append(Arrival(p["seq"], p.get("severity") == "alarm"))

        self.watcher.handle = handle  # type: ignore[method-assign]
        self._tasks = [
            asyncio.create_task(
                watch(self.watcher, self.broker.url, client_id="harness-platform", summary_every_s=1e9)
            ),
            asyncio.create_task(self._wave()),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_gateway(signal.SIGTERM)
        for t in self._tasks:
            t.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        self.broker.stop()

    async def _wave(self) -> None:
        level = 0
        while True:
            level = (level + 17) % 280
            self.smoke.set_smoke(level / 100)
            await asyncio.sleep(0.01)

    def toggle_fire(self) -> None:
        """A fire during an outage, or its reset: each is an alarm event that must lead the backlog."""
        if self._fire_point:
            self.panel.clear_point(self._fire_point)
            self.panel.reset()
            self._fire_point = 0
        else:
            self._fire_point = self.rng.randint(1, 200)
            self.panel.alarm_point(self._fire_point)

    async def start_gateway(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=open(self.workdir / "gateway.log", "ab"),  # noqa: SIM115, ASYNC230
        )  # fmt: skip

    async def stop_gateway(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(sig)
        async with asyncio.timeout(20):
            await self.proc.wait()

    def store(self) -> tuple[int, int, bool]:
        """(last_seq, depth, integrity ok) of the gateway's store, read while it is stopped."""
        db = sqlite3.connect(self.state / "outbox.db")
        try:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        finally:
            db.close()
        return (int(row[0]) if row else 0), int(depth), ok

    async def drain(self, result: Result, timeout_s: float = 60.0) -> None:
        """Let the gateway send everything, stop it, and account."""
        self._tasks[1].cancel()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.stop_gateway(signal.SIGTERM)
            last, depth, ok = self.store()
            ledger = self.watcher.ledgers.get(GATEWAY)
            if depth == 0 and ledger is not None and ledger.max_seq >= last - 1:
                break
            await self.start_gateway()
            await asyncio.sleep(2.0)  # let it drain before looking again
        last, _depth, ok = self.store()
        result.integrity_failures += 0 if ok else 1
        ledger = self.watcher.ledgers.get(GATEWAY)
        assert ledger is not None
        missing = [s for s in range(1, last + 1) if s not in ledger.received and not ledger.declared_gap(s)]
        result.committed = last
        result.received = len(ledger.received)
        result.lost = len(missing)
        result.duplicates = ledger.duplicates
        result.unexpected = len([s for s in ledger.received if s > last])
        result.reordered = ledger.reordered
        result.declared = len(ledger.declared)
        if missing:
            result.notes.append(f"first lost: {missing[:10]}")


async def gateway_kills(workdir: Path, kills: int, seed: int) -> Result:
    """kill -9 of the gateway at random moments; the store is checked after every kill."""
    rng = random.Random(seed)
    result = Result("gateway kill -9")
    started = time.monotonic()
    async with Rig(workdir, rng) as rig:
        for _ in range(kills):
            await rig.start_gateway()
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await rig.stop_gateway(signal.SIGKILL)
            result.faults += 1
            _last, _depth, ok = rig.store()
            if not ok:
                result.integrity_failures += 1
        await rig.start_gateway()
        await rig.drain(result)
    result.seconds = time.monotonic() - started
    return result


async def broker_kills(workdir: Path, kills: int, seed: int) -> Result:
    """kill -9 of the broker mid-stream, an alarm during each outage, restart; the alarm must come first."""
    rng = random.Random(seed)
    result = Result("broker kill -9")
    started = time.monotonic()
    async with Rig(workdir, rng) as rig:
        await rig.start_gateway()
        await asyncio.sleep(1.0)
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            rig.broker.kill()
            result.faults += 1
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            rig.toggle_fire()
            await asyncio.sleep(0.3)  # the panel is polled every 50 ms: the alarm is committed by now
            mark = len(rig.arrivals)
            before = max((a.seq for a in rig.arrivals), default=0)
            rig.broker.start()
            result.heals += 1
            first = await _first_new_arrival(rig, mark, before)
            if first is not None and first.alarm:
                result.alarm_first += 1
            elif first is not None:
                result.notes.append(f"heal {result.heals}: seq {first.seq} (not an alarm) came first")
        await rig.drain(result)
    result.seconds = time.monotonic() - started
    return result


async def _first_new_arrival(rig: Rig, mark: int, before: int, timeout_s: float = 15.0) -> Arrival | None:
    """The first message after a heal that carries a seq committed during the outage."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for a in rig.arrivals[mark:]:
            if a.seq > before:
                return a
        await asyncio.sleep(0.02)
    return None


CORRUPTIONS = ("truncate", "flip", "zero", "garbage-wal", "text", "other-db")


def corrupt(path: Path, kind: str, rng: random.Random) -> None:
    """Damage a store the way power loss, a bad SD card or a careless hand would."""
    data = path.read_bytes() if path.exists() else b""
    if kind == "truncate":
        path.write_bytes(data[: rng.randint(0, max(1, len(data) - 1))])
    elif kind == "flip":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 64)):
            if buf:
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(buf))
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "garbage-wal":
        Path(str(path) + "-wal").write_bytes(rng.randbytes(rng.randint(1, 65536)))
    elif kind == "text":
        path.write_text("not a database\n" * rng.randint(1, 100))
    elif kind == "other-db":
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE other (x)")
        db.commit()
        db.close()


async def corrupt_stores(workdir: Path, variants: int, seed: int) -> Result:
    """Seeded damage to the stopped gateway's store; it must start, report, and go on without a crash loop."""
    rng = random.Random(seed)
    result = Result("corrupt store at start")
    started = time.monotonic()
    async with Rig(workdir, rng) as rig:
        for i in range(variants):
            await rig.start_gateway()
            await asyncio.sleep(rng.uniform(0.5, 1.0))
            await rig.stop_gateway(signal.SIGKILL)
            kind = CORRUPTIONS[i % len(CORRUPTIONS)]
            corrupt(rig.state / "outbox.db", kind, rng)
            result.faults += 1
            await rig.start_gateway()
            await asyncio.sleep(1.0)
            assert rig.proc is not None
            if rig.proc.returncode is not None:
                result.notes.append(f"variant {i} ({kind}): gateway exited with {rig.proc.returncode}")
                result.integrity_failures += 1
            await rig.stop_gateway(signal.SIGTERM)
            _last, _depth, ok = rig.store()
            if not ok:
                result.integrity_failures += 1
        await rig.start_gateway()
        await rig.drain(result)
    result.seconds = time.monotonic() - started
    return result


async def run_all(workdir: Path, *, long: bool = False, seed: int = 1) -> list[Result]:
    """The CI-sized run, or with `long` the same for much longer."""
    scale = 20 if long else 1
    return [
        await gateway_kills(workdir / "kills", 50 * scale, seed),
        await broker_kills(workdir / "broker", 20 * scale, seed),
        await corrupt_stores(workdir / "corrupt", 20 * scale, seed),
    ]


def report(results: list[Result]) -> str:
    lines = [HEADER] + [r.row() for r in results]
    for r in results:
        lines += [f"- {r.scenario}: {n}" for n in r.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    p.add_argument("--long", action="store_true", help="twenty times the CI counts (hours)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="campus-edge-faults-") as d:
        results = asyncio.run(run_all(Path(d), long=args.long, seed=args.seed))
    print(report(results))
    return 0 if all(r.passed for r in results) else 1
