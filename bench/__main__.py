"""`python -m bench` (or `scripts/bench`): run the benchmark scenarios, print a table, write JSON.

    scripts/bench                       # every scenario, 3 runs each, medians in the table
    scripts/bench --only a,b --runs 1   # throughput and alarm latency, once
    scripts/bench --quick               # shorter windows and smaller backlogs, for a first look

The JSON (bench/results/<UTC time>.json unless --out) holds the machine, every run's figures with their load, and
the medians. Targets are those of docs/benchmarks.md; the table marks each figure against its target.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import alarm_latency, drain, footprint, link_back, rs485, store_full, throughput
from bench.stats import median

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_at_start": os.getloadavg(),
    }


def scenarios(quick: bool, profile: bool = False) -> dict[str, tuple[str, Callable[[Path], dict[str, Any]]]]:
    """Letter -> (name, run in a work folder)."""
    window = 15.0 if quick else 60.0
    return {
        "a": (
            "throughput, most it holds",
            lambda d: throughput.run(d, devices=30, interval_s=0.01, window_s=window, with_profile=profile),
        ),
        "a2": (
            "throughput at 9,000/s",
            lambda d: throughput.run(d, devices=10, interval_s=0.02, window_s=window, with_profile=profile),
        ),
        "b": ("alarm latency idle", lambda d: alarm_latency.run(d, edges=50 if quick else 200)),
        "b2": (
            "alarm latency, draining",
            lambda d: alarm_latency.run(d, edges=400, backlog=100_000),
        ),
        "b3": (
            "alarm latency, command flood",
            lambda d: alarm_latency.run(d, edges=50 if quick else 200, flood_rate=1000.0),
        ),
        "b4": (
            "alarm latency, sign-ins",
            lambda d: alarm_latency.run(d, edges=50 if quick else 200, signin_rate=5.0),
        ),
        "c": ("backlog drain", lambda d: drain.run(d, outage_s=600, rate=500 if quick else 2000)),
        "d": ("rs-485 scheduling", lambda d: rs485.run(d, window_s=10.0 if quick else 30.0)),
        "e": (
            "footprint",
            lambda d: footprint.run(d, settle_s=10.0 if quick else 20.0, queued=200_000 if quick else 1_000_000),
        ),
        "f": ("store on a full disk", lambda d: store_full.run(d, full_s=5.0 if quick else 10.0)),
        "g": ("back on the link", lambda d: link_back.run(d, outages_s=(5.0,) if quick else (5.0, 30.0))),
    }


# (scenario, key path, target, "min" = figure must be at least the target, "max" = at most)
TARGETS: list[tuple[str, tuple[str, ...], float, str]] = [
    ("a", ("delivered_readings_per_s",), 40_000, "min"),
    ("a", ("lost",), 0, "max"),
    ("a", ("cpu_pct_per_1000_readings_s",), 1.2, "max"),
    ("a2", ("lost",), 0, "max"),
    ("a2", ("cpu_pct_per_1000_readings_s",), 1.2, "max"),
    ("a2", ("reading_age_ms", "p99"), 10, "max"),
    ("a2", ("write_amplification",), 3, "max"),
    ("b", ("latency_ms", "p99"), 20, "max"),
    ("b2", ("during_drain", "p99"), 50, "max"),
    ("b3", ("latency_ms", "p99"), 20, "max"),
    ("b4", ("latency_ms", "p99"), 20, "max"),
    ("c", ("drain_readings_per_s",), 50_000, "min"),
    ("c", ("lost",), 0, "max"),
    ("d", ("share_of_wire_limit_pct",), 90, "min"),
    ("d", ("dead_device", "requests_per_backoff_period"), 1, "max"),
    ("d", ("bollard_wait_transactions", "max"), 1, "max"),
    ("e", ("demo_rss_mb",), 50, "max"),
    ("e", ("demo_disk_write_mb_per_day",), 50, "max"),
    ("e", ("queued_rss_mb",), 80, "max"),
    ("e", ("start_to_first_publish_s",), 1.0, "max"),
    ("f", ("store_peak_share_of_fs",), 0.5, "max"),
    ("f", ("first_delivery_after_back_s",), 5.0, "max"),
    ("f", ("caught_up_after_back_s",), 10.0, "max"),
    ("f", ("lost",), 0, "max"),
    ("f", ("cannot_delete_lines",), 0, "max"),
    ("g", ("worst_s",), 2.0, "max"),
    ("g", ("lost",), 0, "max"),
]


def pick(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    """A figure by its key path, or None."""
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--only", default="a,a2,b,b2,b3,b4,c,d,e,f,g", help="comma-separated scenarios (default: all)")
    p.add_argument("--profile", action="store_true", help="sample the gateway with py-spy during throughput runs")
    p.add_argument("--runs", type=int, default=3, help="runs per scenario; the table shows medians")
    p.add_argument("--quick", action="store_true", help="shorter windows, smaller backlogs")
    p.add_argument("--out", type=Path, help="the JSON file (default: bench/results/<UTC time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the work folders (logs, stores) for a look afterwards")
    args = p.parse_args(argv)
    # Gateways run in this process for some scenarios; their per-alarm warnings would drown the progress lines.
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    table = scenarios(args.quick, args.profile)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in table]
    if unknown:
        p.error(f"unknown scenario {unknown[0]!r}; expected some of {', '.join(table)}")
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "runs": {}, "medians": {}}
    root = Path(tempfile.mkdtemp(prefix="campus-edge-bench-"))
    try:
        for key in chosen:
            name, run = table[key]
            runs = []
            for i in range(args.runs):
                print(f"[{key}] {name}, run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                result = run(root / f"{key}-{i}")
                result["seconds"] = round(time.monotonic() - began, 1)
                runs.append(result)
            report["runs"][key] = runs
            report["medians"][key] = _medians(runs)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"work folders kept in {root}", file=sys.stderr)
    out = args.out or RESULTS / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nJSON: {out}")
    return 0


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per numeric figure, the median over runs (nested dicts alike); other values from the first run."""
    first = runs[0]
    out: dict[str, Any] = {}
    for k, v in first.items():
        if k == "load":
            out[k] = v  # the same in every run
        elif isinstance(v, dict):
            out[k] = _medians([r[k] for r in runs if isinstance(r.get(k), dict)])
        elif isinstance(v, int | float) and not isinstance(v, bool):
            values = [r[k] for r in runs if isinstance(r.get(k), int | float)]
            out[k] = round(median(values), 2)
        else:
            out[k] = v
    return out


def render(report: dict[str, Any]) -> str:
    """The table: each targeted figure, its median, the target, and whether it is met."""
    m = report["machine"]
    lines = [
        f"campus-edge benchmarks on {m['cores']} cores ({m['cpu']}), Python {m['python']}; medians of "
        f"{max((len(r) for r in report['runs'].values()), default=0)} run(s)",
        "",
        f"{'scenario':<26}{'figure':<42}{'median':>12}  {'target':>10}  ok",
    ]
    names = scenarios(report["quick"])
    for key, path, target, kind in TARGETS:
        if key not in report["medians"]:
            continue
        value = pick(report["medians"][key], path)
        ok = "-" if value is None else ("yes" if (value >= target if kind == "min" else value <= target) else "NO")
        sign = ">=" if kind == "min" else "<="
        shown = "n/a" if value is None else f"{value:g}"
        lines.append(f"{names[key][0]:<26}{'.'.join(path):<42}{shown:>12}  {sign} {target:<7g}  {ok}")
    lines.append("")
    for key, med in report["medians"].items():
        lines.append(f"{names[key][0]} load: {json.dumps(med.get('load'))}")
        if med.get("profile_pct"):
            where = ", ".join(f"{part} {pct:g} %" for part, pct in med["profile_pct"].items())
            lines.append(f"  where the gateway's time goes: {where}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
