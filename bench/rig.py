"""The parts a benchmark runs: a private broker, simulators and the gateway as processes, and a platform listener.

The gateway runs as its own process (`campus-edge run`) so its CPU time and memory can be read from /proc without
counting the simulators or the listener, which run in processes of their own on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.broker import PrivateBroker, free_port

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
SITE, GATEWAY = "bench-school", "gw-1"
PREFIX = f"campus/v1/{SITE}/{GATEWAY}"


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU seconds used so far, memory, and bytes written to storage by one process."""

    cpu_s: float
    rss_mb: float
    peak_rss_mb: float
    write_bytes: int = 0  # /proc/PID/io: what the process caused to be sent to the block device (fsyncs included)


def sample(pid: int) -> ProcSample:
    """Read /proc: user + system time, VmRSS and VmHWM (the peak resident set)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    mem: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                mem[key] = int(rest.split()[0]) / 1024
    written = 0
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    written = int(line.split()[1])
    except OSError:  # another user's process, or a kernel without task I/O accounting
        pass
    return ProcSample(cpu, mem.get("VmRSS", 0.0), mem.get("VmHWM", 0.0), written)


def python(*args: str) -> list[str]:
    """A command line running this interpreter (the project's venv) on a module."""
    return [sys.executable, *args]


def wait_listening(port: int, within_s: float = 10.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {within_s} s")


@contextlib.contextmanager
def process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in `log`, stopped with SIGTERM (then SIGKILL) at the end."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], within_s: float = 15.0) -> None:
    """SIGTERM and wait; SIGKILL if it does not go."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(within_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[PrivateBroker]:
    """A private mosquitto on a free loopback port."""
    b = PrivateBroker(workdir / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@contextlib.contextmanager
def tcp_simulators(workdir: Path, count: int, model: str, churn: bool = True) -> Iterator[list[int]]:
    """`count` Modbus TCP device servers (unit 1 each) in one simulator process; their ports."""
    ports = [free_port() for _ in range(count)]
    cmd = python("-m", "simulators", *(a for p in ports for a in ("--tcp", f"127.0.0.1:{p}")), "--unit", f"1={model}")
    if churn:
        cmd.append("--churn")
    with process(cmd, workdir / "simulators.log") as proc:
        (workdir / "simulators.pid").write_text(str(proc.pid))
        for p in ports:
            wait_listening(p)
        yield ports


def site_config(
    state_dir: Path,
    broker_url: str,
    buses: list[str],
    devices: list[str],
    inputs: list[str] | None = None,
    mqtt_extra: str = "",
) -> str:
    """A site file for the gateway: buses and devices as TOML tables written by the caller."""
    parts = [
        f'[site]\nid = "{SITE}"\n',
        f'[gateway]\nid = "{GATEWAY}"\nstate_dir = "{state_dir}"\n',
        f'[mqtt]\nurls = ["{broker_url}"]\nallow_plaintext = true\nreconnect_min_s = 0.2\nreconnect_max_s = 2\n'
        + mqtt_extra,
        *buses,
        *devices,
    ]
    if inputs:
        parts.append('[gpio]\npin_factory = "mock"\n')
        parts += inputs
    return "\n".join(parts)


def tcp_site(state_dir: Path, broker_url: str, ports: list[int], profile: str, interval_s: float) -> str:
    """One Modbus TCP bus per simulated device, as separate devices on a site network are."""
    buses = [f'[[buses]]\nid = "tcp-{i}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {p}\n' for i, p in enumerate(ports)]
    devices = [
        f'[[devices]]\nid = "dev-{i}"\nbus = "tcp-{i}"\nunit = 1\nprofile = "{profile}"\n'
        f"poll_interval_s = {interval_s}\n"
        for i in range(len(ports))
    ]
    return site_config(state_dir, broker_url, buses, devices)


@contextlib.contextmanager
def gateway(workdir: Path, config_text: str) -> Iterator[subprocess.Popen[bytes]]:
    """`campus-edge run` on a config written to `workdir`."""
    config = workdir / "site.toml"
    config.write_text(config_text)
    with process(python("-m", "gateway.cli", "run", "--config", str(config)), workdir / "gateway.log") as proc:
        yield proc


def outbox_state(state_dir: Path) -> tuple[int, set[int]]:
    """After the gateway stopped: the last seq it committed and the seqs still waiting in its outbox."""
    db = sqlite3.connect(f"file:{state_dir / 'outbox.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        waiting = {int(r[0]) for r in db.execute("SELECT seq FROM outbox")}
    finally:
        db.close()
    return (int(row[0]) if row else 0), waiting


class Listener:
    """A running `bench.listener` process; `finish()` stops it and returns its summary."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path) -> None:
        self.proc = proc
        self.out = out

    def finish(self) -> dict[str, Any]:
        """Stop listening; what arrived (see bench.listener.Tally.summary)."""
        stop(self.proc)
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def pid(self) -> int:
        """The listener's process id, for its CPU time."""
        return self.proc.pid


@contextlib.contextmanager
def listener(
    workdir: Path, broker_url: str, events_only: bool = False, session: str | None = None
) -> Iterator[Listener]:
    """A platform subscriber to the gateway's topics in a process of its own, subscribed before this returns."""
    ready, out = workdir / "listener.ready", workdir / "listener.json"
    ready.unlink(missing_ok=True)
    # What the gateway publishes, not what is sent to it (a command flood is for the gateway, not the platform).
    topics = [f"{PREFIX}/{t}" for t in ("status", "telemetry", "event/#", "state/#", "reply/#")]
    cmd = python("-m", "bench.listener", "--broker", broker_url, *(a for t in topics for a in ("--topic", t)))
    if events_only:
        cmd.append("--events-only")
    if session:
        cmd += ["--session", session]
    with process([*cmd, "--ready", str(ready), "--out", str(out)], workdir / "listener.log") as proc:
        deadline = time.monotonic() + 10
        while not ready.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the listener did not subscribe; see {workdir / 'listener.log'}")
            time.sleep(0.02)
        yield Listener(proc, out)
