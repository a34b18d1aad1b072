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

from gateway.cli.watch import Watcher, watch
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
    invalid: int = 0
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
            and self.invalid == 0
            and self.alarm_first == self.heals
            and self.committed > 0
        )

    def row(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (
            f"| {self.scenario} | {self.faults} | {self.committed} | {self.received} | {self.lost} | "
            f"{self.duplicates} | {self.unexpected} | {self.reordered} | {self.declared} | "
            f"{self.integrity_failures} | {self.invalid} | {self.alarm_first}/{self.heals} | {self.seconds:.0f} | "
            f"{verdict} |"
        )


HEADER = (
    "| scenario | faults | committed | received | lost | duplicates | unexpected | reordered | declared gaps "
    "| integrity failures | off contract | alarm first after heal | s | verdict |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
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
        path = self.state / "outbox.db"
        if not path.exists():
            return 0, 0, True  # killed before it made its store (a cold start imports for a while): nothing to check
        db = sqlite3.connect(path)
        try:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            try:
                row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
                depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            except sqlite3.OperationalError:  # killed between making the file and its tables
                row, depth = None, 0
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
        result.invalid = self.watcher.invalid
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


async def _until_exists(path: Path, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.05)


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
            # A cold start on a loaded machine can take longer than the pause: a store not yet made is no store to
            # damage (the directory itself may not exist yet).
            await _until_exists(rig.state / "outbox.db", within_s=30.0)
            await asyncio.sleep(rng.uniform(0.5, 1.0))
            await rig.stop_gateway(signal.SIGKILL)
            kind = CORRUPTIONS[i % len(CORRUPTIONS)]
            corrupt(rig.state / "outbox.db", kind, rng)
            result.faults += 1
            mark = len(rig.arrivals)
            await rig.start_gateway()
            # Up once it delivers again: its store is open (a damaged one moved aside). A fixed pause was shorter
            # than a cold start on a loaded machine, and the check then read the damaged file itself.
            await _first_new_arrival(rig, mark, 0, timeout_s=30.0)
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
    results = [
        await gateway_kills(workdir / "kills", 50 * scale, seed),
        await broker_kills(workdir / "broker", 20 * scale, seed),
        await corrupt_stores(workdir / "corrupt", 20 * scale, seed),
    ]
    if FaultNet.available() is None:
        cuts: list[float] = [1, 2, 5, 10, 30, 60] * 5 if long else [1, 3, 10, 60]
        results.append(await partitions(workdir / "net", cuts, 600 if long else 10, seed))
    return results


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


class FaultNet:
    """Two network namespaces of our own, gateway and broker, joined by a veth pair.

    The link can be cut (`ip link set down`) and made lossy (iptables `statistic --mode random` drops; this
    kernel has no netem). Only the namespaces' own addresses are used.
    """

    def __init__(self, tag: str, subnet: int) -> None:
        self.gw = f"ce-gw-{tag}"
        self.br = f"ce-br-{tag}"
        self.gw_if = f"cegw{tag}"[:15]
        self.br_if = f"cebr{tag}"[:15]
        self.gw_addr = f"10.231.{subnet}.1"
        self.br_addr = f"10.231.{subnet}.2"

    @staticmethod
    def available() -> str | None:
        """None if the harness can build namespaces here, else why not."""
        import os  # noqa: PLC0415
        import shutil  # noqa: PLC0415

        if os.geteuid() != 0:
            return "network namespaces need root"
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        return None

    def _ip(self, *args: str) -> None:
        import subprocess  # noqa: PLC0415

        subprocess.run(["ip", *args], check=True, capture_output=True)

    def __enter__(self) -> FaultNet:
        self._ip("netns", "add", self.gw)
        self._ip("netns", "add", self.br)
        self._ip("link", "add", self.gw_if, "type", "veth", "peer", "name", self.br_if)
        self._ip("link", "set", self.gw_if, "netns", self.gw)
        self._ip("link", "set", self.br_if, "netns", self.br)
        self._ip("-n", self.gw, "addr", "add", f"{self.gw_addr}/30", "dev", self.gw_if)
        self._ip("-n", self.br, "addr", "add", f"{self.br_addr}/30", "dev", self.br_if)
        for ns, dev in ((self.gw, self.gw_if), (self.br, self.br_if)):
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", dev, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        import subprocess  # noqa: PLC0415

        for ns in (self.gw, self.br):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)

    def cut(self) -> None:
        self._ip("-n", self.gw, "link", "set", self.gw_if, "down")

    def heal(self) -> None:
        self._ip("-n", self.gw, "link", "set", self.gw_if, "up")

    def loss(self, probability: float | None) -> None:
        """Drop this share of packets both ways on the gateway's side; None clears it."""
        import subprocess  # noqa: PLC0415

        subprocess.run(["ip", "netns", "exec", self.gw, "iptables", "-F"], check=True, capture_output=True)
        if probability is None:
            return
        for chain in ("INPUT", "OUTPUT"):
            subprocess.run(
                ["ip", "netns", "exec", self.gw, "iptables", "-A", chain, "-o" if chain == "OUTPUT" else "-i",
                 self.gw_if, "-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP"],
                check=True, capture_output=True,
            )  # fmt: skip


INFLIGHT = 16  # the gateway's default mqtt.inflight_max


async def partitions(workdir: Path, durations: list[float], loss_s: float, seed: int) -> Result:
    """Network cuts of the given lengths between gateway and broker (a fire in each), then random packet loss."""
    import os  # noqa: PLC0415

    rng = random.Random(seed)
    result = Result("network cuts and loss")
    started = time.monotonic()
    os.makedirs(workdir, exist_ok=True)
    tag = f"{os.getpid() % 10000}"
    with FaultNet(tag, os.getpid() % 250) as net:
        broker = PrivateBroker(workdir / "broker", netns=net.br, bind=net.br_addr)
        broker.start()
        procs: list[asyncio.subprocess.Process] = []
        try:

            async def spawn(ns: str, *argv: str, log: str) -> asyncio.subprocess.Process:
                proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", ns, sys.executable, *argv,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=open(workdir / log, "ab"),  # noqa: SIM115, ASYNC230
                )  # fmt: skip
                procs.append(proc)
                return proc

            sim_port = 15020
            sim = await spawn(
                net.gw, "-m", "simulators", "--tcp", f"127.0.0.1:{sim_port}",
                "--unit", "1=fire_panel", "--unit", "2=smoke_detector", "--wave", "2", log="sim.log",
            )  # fmt: skip
            arrivals = workdir / "arrivals.log"
            summary = workdir / "summary.json"
            watcher = await spawn(
                net.br, "-m", "gateway.cli", "watch", "--broker", f"mqtt://127.0.0.1:{broker.port}",
                "--site", SITE, "--gateway", GATEWAY, "--client-id", "harness-platform",
                "--json", str(summary), "--log", str(arrivals), log="watch.log",
            )  # fmt: skip
            state = workdir / "state"
            config = workdir / "gateway.toml"
            config.write_text(
                config_text(
                    state, broker.url, [{"id": "tcp-1", "type": "tcp", "host": "127.0.0.1", "port": sim_port}],
                    [
                        {"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.05},
                        {"id": "smoke-1", "bus": "tcp-1", "unit": 2, "profile": "smoke_detector",
                         "poll_interval_s": 0.02},
                    ],
                    mqtt_extra="publish_timeout_s = 2.0\nkeepalive_s = 5\n",
                )
            )  # fmt: skip
            await asyncio.sleep(1.0)
            gateway = await spawn(net.gw, "-m", "gateway.cli", "run", "--config", str(config), log="gateway.log")

            def seen() -> list[tuple[str, list[int]]]:
                """Messages in arrival order: (kind, seqs)."""
                if not arrivals.exists():
                    return []
                lines = (ln.split() for ln in arrivals.read_text().splitlines())
                return [(p[1], [int(x) for x in p[2:]]) for p in lines if len(p) >= 3]

            def received() -> set[int]:
                return {s for _kind, seqs in seen() for s in seqs}

            await asyncio.sleep(2.0)
            for d in durations:
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                net.cut()
                result.faults += 1
                await asyncio.sleep(d / 2)
                assert sim.pid is not None
                os.kill(sim.pid, signal.SIGUSR1)  # a fire (or its reset) while the link is down
                await asyncio.sleep(d / 2)
                # Nothing arrives while the link is cut, but the watcher may still be logging what arrived before
                # it (a loaded machine): wait for its log to settle, so that only arrivals after the heal count.
                settled, mark = time.monotonic(), len(seen())
                while time.monotonic() - settled < 0.5:
                    await asyncio.sleep(0.1)
                    if len(seen()) != mark:
                        settled, mark = time.monotonic(), len(seen())
                net.heal()
                result.heals += 1
                # Messages already written to the socket before the alarm was committed cannot be overtaken (TCP
                # keeps order); at most the in-flight window of them may arrive first. Nothing queued may.
                deadline = time.monotonic() + 30
                ahead: int | None = None
                while ahead is None and time.monotonic() < deadline:
                    after = seen()[mark:]
                    idx = next((i for i, (kind, _s) in enumerate(after) if kind == "alarm"), None)
                    if idx is not None:
                        ahead = sum(1 for kind, _s in after[:idx] if kind == "telemetry")
                    await asyncio.sleep(0.05)
                if ahead is not None and ahead <= INFLIGHT:
                    result.alarm_first += 1
                result.notes.append(f"cut of {d:g} s: {ahead} telemetry messages (already in flight) before the alarm")
            net.loss(0.2)
            result.faults += 1
            await asyncio.sleep(loss_s)
            net.loss(None)
            # Drain: wait until the gateway's store is empty and the platform has seen its last seq.
            deadline = time.monotonic() + 120
            last = 0
            while time.monotonic() < deadline:
                db = sqlite3.connect(state / "outbox.db")
                try:
                    depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                    last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0]
                finally:
                    db.close()
                if depth == 0 and max(received(), default=0) >= last - 50:
                    break
                await asyncio.sleep(0.5)
            sim.send_signal(signal.SIGTERM)
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 20)
            await asyncio.sleep(1.0)
            watcher.send_signal(signal.SIGTERM)
            await asyncio.wait_for(watcher.wait(), 20)
            db = sqlite3.connect(state / "outbox.db")
            try:
                last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0]
                # Committed during the orderly stop (e.g. an alarm's lifecycle event of its last moments): kept in
                # the store for the next start, not lost.
                kept = {row[0] for row in db.execute("SELECT seq FROM outbox")}
                if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    result.integrity_failures += 1
            finally:
                db.close()
            s = json.loads(summary.read_text())[GATEWAY]
            got = received()
            declared = [tuple(g) for g in s["declared_gaps"]]
            kept = {n for n in kept if n > max(got, default=0)}  # only after everything delivered: the stop's own
            missing = [n for n in range(1, last + 1)
                       if n not in got and n not in kept and not any(lo <= n <= hi for lo, hi in declared)]  # fmt: skip
            if kept:
                result.notes.append(f"kept in the store at the stop, for the next start: {sorted(kept)[:10]}")
            result.committed = last
            result.received = len(got)
            result.lost = len(missing)
            result.duplicates = s["duplicates"]
            result.unexpected = len([n for n in got if n > last])
            result.reordered = s["reordered"]
            result.declared = len(declared)
            result.invalid = s["invalid"]
            if missing:
                result.notes.append(f"first lost: {missing[:10]}")
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(p.wait(), 10)
            broker.stop()
    result.seconds = time.monotonic() - started
    return result
