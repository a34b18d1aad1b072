"""(a) Throughput: N Modbus TCP analog modules x 18 channels, every channel changing on every poll.

Poll -> outbox (durable) -> mosquitto QoS 1 -> the listener. Readings/s delivered over a sustained window, the
gateway's CPU (% of one core) and peak RSS, the age of readings on arrival, and loss checked against the outbox
after an orderly stop: every committed seq either arrived or is still waiting in the outbox.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import profile, rig
from bench.listener import expand
from bench.stats import percentile

READINGS_PER_POLL = 18


def run(
    workdir: Path, devices: int, interval_s: float, window_s: float, warmup_s: float = 5.0, with_profile: bool = False
) -> dict[str, Any]:
    """One load, measured over `window_s` after `warmup_s`; with a py-spy profile of the window if asked."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    with (
        rig.broker(workdir) as broker,
        rig.tcp_simulators(workdir, devices, "analog_module") as ports,
        rig.listener(workdir, broker.url) as listener,
    ):
        text = rig.tcp_site(state, broker.url, ports, "analog_module", interval_s)
        with rig.gateway(workdir, text) as gw:
            time.sleep(warmup_s)
            before = rig.sample(gw.pid)
            sim_before = _sim_cpu(workdir)
            started = time.monotonic()
            spy = profile.record(gw.pid, window_s, workdir / "profile.txt") if with_profile else None
            time.sleep(window_s)
            after = rig.sample(gw.pid)
            elapsed = time.monotonic() - started
            sim_after = _sim_cpu(workdir)
            if spy is not None:
                spy.wait(30)
            rig.stop(gw)
        time.sleep(0.5)  # the last PUBACKed messages on their way to the listener
        heard = listener.finish()
    last_seq, waiting = rig.outbox_state(state)
    received = expand(heard["received_seqs"])
    lost = [s for s in range(1, last_seq + 1) if s not in received and s not in waiting]
    per_second = {int(k): v for k, v in heard["per_second"].items()}
    window = [v for k, v in per_second.items() if started + 1 <= k <= started + elapsed - 1]
    delivered = sum(window) / len(window) if window else 0.0
    payload = {int(k): v for k, v in heard.get("payload_bytes", {}).items()}
    window_bytes = [v for k, v in payload.items() if started + 1 <= k <= started + elapsed - 1]
    stored_per_s = sum(window_bytes) / len(window_bytes) if window_bytes else 0.0
    written_per_s = (after.write_bytes - before.write_bytes) / elapsed
    cpu = (after.cpu_s - before.cpu_s) / elapsed * 100
    ages = sorted(heard["age_ms"])
    return {
        "load": {
            "devices": devices,
            "readings_per_poll": READINGS_PER_POLL,
            "requests_per_poll": 2,
            "poll_interval_s": interval_s,
            "offered_readings_per_s": round(devices * READINGS_PER_POLL / interval_s),
            "window_s": round(elapsed, 1),
        },
        "delivered_readings_per_s": round(delivered),
        "committed_seqs": last_seq,
        "lost": len(lost),
        "waiting_at_stop": len(waiting),
        "duplicates": heard["duplicates"],
        "gateway_cpu_pct": round(cpu, 1),
        "cpu_pct_per_1000_readings_s": round(cpu / (delivered / 1000), 2) if delivered else None,
        "disk_write_bytes_per_s": round(written_per_s),
        "disk_write_bytes_per_reading": round(written_per_s / delivered, 1) if delivered else None,
        # Bytes written to storage per byte of readings the platform received (the payloads stand for the rows).
        "write_amplification": round(written_per_s / stored_per_s, 2) if stored_per_s else None,
        "gateway_rss_mb": round(after.rss_mb, 1),
        "gateway_peak_rss_mb": round(after.peak_rss_mb, 1),
        "simulator_cpu_pct": (
            round((sim_after - sim_before) / elapsed * 100, 1)
            if sim_before is not None and sim_after is not None
            else None
        ),
        "profile_pct": profile.shares(workdir / "profile.txt") if (workdir / "profile.txt").exists() else None,
        "reading_age_ms": {"p50": percentile(ages, 50), "p99": percentile(ages, 99), "max": ages[-1] if ages else None},
    }


def _pct(before: float | None, after: float | None, elapsed: float) -> float | None:
    return round((after - before) / elapsed * 100, 1) if before is not None and after is not None else None


def _sim_cpu(workdir: Path) -> float | None:
    pid_file = workdir / "simulators.pid"
    if not pid_file.exists():
        return None
    return rig.sample(int(pid_file.read_text())).cpu_s
