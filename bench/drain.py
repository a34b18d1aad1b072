"""(c) Backlog drain: the outbox a 10-minute outage leaves behind, sent once the broker is reachable again.

The backlog is written straight into the outbox (as the gateway itself would have committed it while the link was
down), then the gateway starts with the broker up. Readings/s from the first to the last delivery, the gateway's
CPU over that time, and loss checked against the outbox.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import rig
from bench.alarm_latency import prefill
from bench.listener import expand


def run(workdir: Path, outage_s: float = 600, rate: float = 2000, extra_mqtt: str = "") -> dict[str, Any]:
    """Drain `outage_s` x `rate` readings."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    rows = int(outage_s * rate)
    began = time.monotonic()
    prefill(state, rows)
    prefill_s = time.monotonic() - began
    with rig.broker(workdir) as broker, rig.listener(workdir, broker.url) as listener:
        text = rig.site_config(state, broker.url, [], [], mqtt_extra=extra_mqtt)
        text += "\n[outbox]\nmax_disk_share = 0.9\nmax_bytes = 4294967296\n"
        with rig.gateway(workdir, text) as gw:
            start = rig.sample(gw.pid)
            t0 = time.monotonic()
            while True:
                time.sleep(0.25)
                if _empty(state) or time.monotonic() - t0 > 600:
                    break
            end = rig.sample(gw.pid)
            elapsed = time.monotonic() - t0
            rig.stop(gw)
        time.sleep(0.5)
        heard = listener.finish()
    last_seq, waiting_rows = rig.outbox_state(state)
    received = expand(heard["received_seqs"])
    lost = sum(1 for s in range(1, last_seq + 1) if s not in received and s not in waiting_rows)
    span = heard["last_mono"] - heard["first_mono"]
    return {
        "load": {"outage_s": outage_s, "readings_per_s_during_outage": rate, "backlog_rows": rows},
        "prefill_rows_per_s": round(rows / prefill_s),
        "drain_readings_per_s": round(heard["readings"] / span) if span > 0 else None,
        "drain_s": round(span, 2),
        "gateway_cpu_pct": round((end.cpu_s - start.cpu_s) / elapsed * 100, 1),
        "gateway_peak_rss_mb": round(end.peak_rss_mb, 1),
        "lost": lost,
        "duplicates": heard["duplicates"],
    }


def _empty(state: Path) -> bool:
    """Whether the outbox is empty, read beside the running gateway (WAL readers do not block it)."""
    db = sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is None
    finally:
        db.close()
