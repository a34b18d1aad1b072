"""(e) Footprint: memory on the demo site, memory with a million messages queued, and start to first publish.

The demo site of examples/demo-site.toml with its devices and poll intervals, each bus served by a simulator
process over Modbus TCP (the gateway's own RTU path is measured in the RS-485 scenario), and its GPIO inputs on
mock pins.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import rig
from bench.alarm_latency import prefill
from gateway.config import load_config
from simulators.broker import free_port

DEMO = rig.ROOT / "examples" / "demo-site.toml"


@contextlib.contextmanager
def demo_site(workdir: Path, broker_url: str, state: Path) -> Iterator[str]:
    """Simulators for the demo site's buses; the gateway configuration that reaches them."""
    cfg = load_config(DEMO)
    buses = []
    with contextlib.ExitStack() as stack:
        for bus in cfg.buses:
            port = free_port()
            units = [a for d in cfg.devices if d.bus == bus.id for a in ("--unit", f"{d.unit}={d.profile}")]
            cmd = rig.python("-m", "simulators", "--tcp", f"127.0.0.1:{port}", *units)
            smoke = next((d.unit for d in cfg.devices if d.bus == bus.id and d.profile == "smoke_detector"), None)
            if smoke is not None:
                cmd += ["--wave", str(smoke)]
            stack.enter_context(rig.process(cmd, workdir / f"sim-{bus.id}.log"))
            rig.wait_listening(port)
            buses.append(f'[[buses]]\nid = "{bus.id}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {port}\n')
        devices = [
            f'[[devices]]\nid = "{d.id}"\nbus = "{d.bus}"\nunit = {d.unit}\nprofile = "{d.profile}"\n'
            f"poll_interval_s = {d.poll_interval_s}\n"
            for d in cfg.devices
        ]
        inputs = [
            f'[[gpio.inputs]]\nid = "{i.id}"\npin = {i.pin}\nkind = "{i.kind}"\ncontact = "{i.contact}"\n'
            f"debounce_ms = {i.debounce_ms}\n"
            for i in cfg.gpio.inputs
        ]
        text = rig.site_config(state, broker_url, buses, devices, inputs)
        yield text + "\n[outbox]\nmax_disk_share = 0.9\nmax_bytes = 4294967296\n"


def _steady(workdir: Path, text: str, settle_s: float) -> tuple[rig.ProcSample, float]:
    """The gateway's sample after `settle_s`, and its bytes written to storage per second over the second half of
    that time (start-up's own writes left out)."""
    with rig.gateway(workdir, text) as gw:
        time.sleep(settle_s / 2)
        half = rig.sample(gw.pid)
        began = time.monotonic()
        time.sleep(settle_s / 2)
        if gw.poll() is not None:
            raise RuntimeError(f"the gateway stopped; see {workdir / 'gateway.log'}")
        end = rig.sample(gw.pid)
        return end, (end.write_bytes - half.write_bytes) / (time.monotonic() - began)


def _first_publish(workdir: Path, text: str, listener: rig.Listener, wait_s: float = 5.0) -> float | None:
    """Seconds from starting the gateway process to the first message at the listener (its birth message)."""
    config = workdir / "first.toml"
    config.write_text(text)
    began = time.monotonic()
    with rig.process(rig.python("-m", "gateway.cli", "run", "--config", str(config)), workdir / "first.log"):
        time.sleep(wait_s)
    heard = listener.finish()
    return float(heard["first_mono"]) - began if heard["messages"] else None


def run(workdir: Path, settle_s: float = 20.0, queued: int = 1_000_000) -> dict[str, Any]:
    """The three footprint figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"load": {"site": "examples/demo-site.toml", "settle_s": settle_s, "queued": queued}}
    # A broker of its own, with nothing retained: the first message heard is this start's birth message.
    with (
        rig.broker(workdir / "first") as broker,
        rig.listener(workdir, broker.url) as listener,
        demo_site(workdir, broker.url, workdir / "state-first") as text,
    ):
        first = _first_publish(workdir, text, listener)
        out["start_to_first_publish_s"] = round(first, 2) if first is not None else None
    with rig.broker(workdir) as broker, demo_site(workdir, broker.url, workdir / "state-demo") as text:
        steady, written_per_s = _steady(workdir, text, settle_s)
    out["demo_rss_mb"] = round(steady.rss_mb, 1)
    out["demo_disk_write_mb_per_day"] = round(written_per_s * 86400 / 1e6, 1)
    out["demo_peak_rss_mb"] = round(steady.peak_rss_mb, 1)
    # A million messages waiting and no broker to send them to: what holding a backlog costs in memory.
    prefill(workdir / "state-queued", queued)
    unreachable = f"mqtt://127.0.0.1:{free_port()}"
    with demo_site(workdir, unreachable, workdir / "state-queued") as text:
        queued_sample, _written = _steady(workdir, text, settle_s)
    out["queued_rss_mb"] = round(queued_sample.rss_mb, 1)
    out["queued_peak_rss_mb"] = round(queued_sample.peak_rss_mb, 1)
    return out
