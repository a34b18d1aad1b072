"""(f) A full disk: the outbox on a 5 MB file system, a broker outage, another file taking every byte, space back.

One analog module polled every 10 ms (18 readings a poll, about 1,800 readings/s), the state directory on a tmpfs
of 5 MiB mounted for the run (root; skipped with the reason elsewhere), the broker stopped once the gateway has
delivered. Every 50 ms the bytes the store's files take on disk (database, WAL, shared memory, ballast, seq
reservation) are read, against the bound: `max_disk_share` of the file system. Once the store evicts, a file takes
every free byte for `full_s`, is deleted, and the broker starts again: seconds to the first delivery and until
readings arrive fresh again, and every committed seq accounted for (arrived, declared in a gap, or still waiting).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import rig
from bench.listener import expand
from tests.small_disk import fill

FS_BYTES = 5 * 1024 * 1024
SHARE = 0.5
STORE_FILES = ("outbox.db", "outbox.db-wal", "outbox.db-shm", "outbox.db.ballast", "outbox.db.seq-reserved")


@contextlib.contextmanager
def small_filesystem(path: Path) -> Iterator[str]:
    """A tmpfs of FS_BYTES at `path`; yields why not ("" when mounted)."""
    if os.geteuid() != 0:
        yield "mounting a tmpfs needs root"
        return
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(path)], capture_output=True, check=False
    )
    if done.returncode != 0:
        yield f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}"
        return
    try:
        yield ""
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def on_disk(state: Path) -> int:
    """Bytes the store's files take, as allocated blocks."""
    total = 0
    for name in STORE_FILES:
        with contextlib.suppress(OSError):
            total += (state / name).stat().st_blocks * 512
    return total


def run(workdir: Path, full_s: float = 10.0) -> dict[str, Any]:
    """One run; the figures, or `skipped` with the reason."""
    workdir.mkdir(parents=True, exist_ok=True)
    small = workdir / "small"
    with small_filesystem(small) as why:
        if why:
            return {"skipped": why}
        return _run(workdir, small, full_s)


def _run(workdir: Path, small: Path, full_s: float) -> dict[str, Any]:
    state = small / "state"
    log = workdir / "gateway.log"
    peak = 0

    def sample_until(done: Any, within_s: float) -> bool:
        nonlocal peak
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            peak = max(peak, on_disk(state))
            if done():
                return True
            time.sleep(0.05)
        return False

    def logged(text: str) -> bool:
        return log.exists() and text in log.read_text(errors="replace")

    with (
        rig.broker(workdir) as broker,
        rig.tcp_simulators(workdir, 1, "analog_module") as ports,
        rig.listener(workdir, broker.url, session="bench-platform") as listener,
    ):
        text = rig.tcp_site(state, broker.url, ports, "analog_module", 0.01)
        text += f"\n[outbox]\nmax_disk_share = {SHARE}\n"
        with rig.gateway(workdir, text) as gw:
            if not sample_until(lambda: logged("connected to"), 30.0):
                raise RuntimeError(f"the gateway did not connect; see {log}")
            time.sleep(1.0)
            broker.stop()
            outage = time.monotonic()
            # The bound, or the disk before it (a store whose bound does not count all its files).
            if not sample_until(lambda: logged("outbox full: evicted") or logged("disk is full"), 120.0):
                raise RuntimeError(f"the store never reached its bound; see {log}")
            to_bound = time.monotonic() - outage
            filler = small / "filler"
            fill(filler)
            sample_until(lambda: False, full_s)
            filler.unlink()
            broker.start()
            back = time.monotonic()
            sample_until(lambda: False, 20.0)
            rig.stop(gw)
        time.sleep(0.5)
        heard = listener.finish()
    last_seq, waiting = rig.outbox_state(state)
    received = expand(heard["received_seqs"])
    gaps = [e["detail"] for e in heard["events"] if e.get("class") == "gap" and e.get("detail")]
    declared = {s for d in gaps for s in range(int(d["first_seq"]), int(d["last_seq"]) + 1)}
    lost = [s for s in range(1, last_seq + 1) if s not in received and s not in waiting and s not in declared]
    resumed = [t - back for t in heard["resumed_mono"] if t >= back]
    fresh = [t - back for t in heard["caught_up_mono"] if t >= back]
    log_text = log.read_text(errors="replace")
    return {
        "load": {"readings_per_s_offered": 1800, "fs_bytes": FS_BYTES, "max_disk_share": SHARE, "full_s": full_s},
        "bound_bytes": int(FS_BYTES * SHARE),
        "store_peak_bytes_on_disk": peak,
        "store_peak_share_of_fs": round(peak / FS_BYTES, 3),
        "seconds_to_bound": round(to_bound, 1),
        "first_delivery_after_back_s": round(resumed[0], 2) if resumed else None,
        "caught_up_after_back_s": round(fresh[0], 2) if fresh else None,
        "committed": last_seq,
        "declared_in_gaps": len(declared),
        "lost": len(lost),
        "waiting_at_stop": len(waiting),  # 20 s after the link came back: a store that resumed holds little
        "cannot_delete_lines": log_text.count("cannot delete acknowledged rows"),
        "cannot_evict_lines": log_text.count("cannot evict"),
    }
