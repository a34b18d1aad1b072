"""Where a process spends its time: py-spy samples folded into the gateway's parts.

Each sample's stack is attributed to the innermost frame that belongs to a known part (our modules first, then
the libraries under them), so the shares add up to 100 % of the samples taken while the process was busy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (part, substrings of a frame "function (file:line)" that belong to it), innermost match wins.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("outbox: SQLite commit and statements", ("gateway/outbox.py",)),
    ("readings: JSON and timestamps", ("gateway/records.py", "gateway/clock.py", "json/")),
    ("decoding and change detection", ("drivers/profile.py", "gateway/tracking.py")),
    ("recorder and retained state", ("gateway/recorder.py", "gateway/stateboard.py", "gateway/contract.py")),
    ("modbus client (pymodbus)", ("pymodbus/",)),
    ("modbus bus and polling (ours)", ("drivers/modbus.py", "drivers/device.py", "gateway/polling.py")),
    ("mqtt client (aiomqtt, paho)", ("aiomqtt/", "paho/")),
    ("uplink (ours)", ("gateway/uplink.py", "gateway/mqtt_client.py")),
    ("asyncio event loop and sockets", ("asyncio/", "selectors.py", "socket.py")),
]


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes] | None:
    """Start sampling `pid` for `seconds` into `out` (folded stacks); None when py-spy is missing."""
    exe = py_spy()
    if exe is None:
        return None
    cmd = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-f", "raw", "-o", str(out), "-r", str(rate)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shares(folded: Path) -> dict[str, float]:
    """Percent of busy samples per part; idle threads (a worker waiting for work) are left out."""
    parts: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "concurrent/futures/thread.py" in frames[-1] or "threading.py" in frames[-1]:
            continue
        part = "other"
        for frame in reversed(frames):
            hit = next((name for name, keys in PARTS if any(k in frame for k in keys)), None)
            if hit is not None:
                part = hit
                break
        parts[part] += int(count)
    total = sum(parts.values()) or 1
    return {name: round(n / total * 100, 1) for name, n in parts.most_common()}
