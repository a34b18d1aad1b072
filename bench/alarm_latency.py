"""(b) Alarm latency: an edge on a panel's fire relay (a mock GPIO pin) -> the platform listener.

The gateway runs in this process so the benchmark can drive its mock pins; the listener runs in its own and stamps
arrivals on the machine-wide monotonic clock, the same clock the edges are stamped with. Debounce is set to 0: a
configured debounce adds exactly its own time. Measured idle, and while a backlog of telemetry drains. The
listener counts telemetry without parsing it: a platform consumer slower than the drain queues the alarm behind
its own backlog, which is the platform's to scale (e.g. shared subscriptions), not the gateway's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

from bench import rig
from bench.stats import percentile
from gateway.base.clock import Clock
from gateway.base.keys import new_keypair
from gateway.config import parse_config
from gateway.panel.auth import hash_pin
from gateway.service.app import Gateway
from gateway.store.outbox import PRIORITY_TELEMETRY, Entry, Limits, Outbox
from simulators.broker import free_port
from simulators.contacts import SimContact, contact_pin_factory

RELAY_PIN = 23
RELAY_ID = "panel-fire-relay"
PIN = "2468"


def _panel(workdir: Path, port: int, ca_file: Path) -> str:
    """A `[panel]` table on loopback with a certificate of a throw-away CA, one guard whose PIN is `PIN`."""
    import trustme  # noqa: PLC0415  (a development dependency, as the benchmarks are)

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(ca_file))
    cert = ca.issue_cert("127.0.0.1")
    chain, key = workdir / "panel.crt", workdir / "panel.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    for secret in (chain, key):  # the chain holds the key too: both are secrets the gateway refuses unless 0600
        secret.chmod(0o600)
    return (
        f'\n[panel]\naddress = "127.0.0.1"\nport = {port}\ncert_file = "{chain}"\nkey_file = "{key}"\n'
        f'max_attempts = 20\n[[panel.guards]]\nid = "wang"\npin_hash = "{hash_pin(PIN)}"\n'
    )


def _signed_in(log: Path) -> dict[str, Any]:
    """What the sign-in process reported at its stop: how many got a session, so a run that signed nobody in shows."""
    said = log.read_text(encoding="utf-8", errors="replace").split()
    let_in = int(said[-1]) if said[-2:-1] == ["in"] else None
    if not let_in:
        raise RuntimeError(f"{log}: no guard was signed in, the run measured no sign-in load: {' '.join(said[-12:])}")
    return {"let_in": let_in}


def prefill(state_dir: Path, rows: int) -> None:
    """A backlog as an outage leaves it: `rows` readings waiting in the outbox."""
    state_dir.mkdir(parents=True, exist_ok=True)
    box = Outbox(state_dir / "outbox.db", Limits(max_bytes=4 << 30, max_disk_share=0.9))
    body = (
        '{"device":"dev-0","point":"ch1","value":12.34,"quality":"good",'
        '"ts":"2026-11-29T01:00:00.000Z","clock_synced":true}'
    )
    for start in range(0, rows, 5000):
        box.put([Entry(PRIORITY_TELEMETRY, None, body)] * min(5000, rows - start))
    box.close()


async def _edges(gw: Gateway, relay: SimContact, count: int, gap_s: tuple[float, float]) -> list[dict[str, Any]]:
    edges = []
    active = False
    for _ in range(count):
        await asyncio.sleep(random.uniform(*gap_s))
        active = not active
        waiting = gw.outbox.bytes  # in memory: COUNT(*) would block the loop this measures
        edges.append({"mono": time.monotonic(), "state": "raised" if active else "cleared", "backlog": waiting})
        relay.set(active)
    if active:
        await asyncio.sleep(gap_s[0])
        relay.set(False)
        edges.append({"mono": time.monotonic(), "state": "cleared", "backlog": gw.outbox.bytes})
    return edges


def run(
    workdir: Path, edges: int, backlog: int = 0, seed: int = 1, flood_rate: float = 0.0, signin_rate: float = 0.0
) -> dict[str, Any]:
    """`edges` relay changes, 40-120 ms apart (5-15 ms while a backlog drains, for enough samples in the drain).
    With `flood_rate`, another process floods the gateway's command topic meanwhile (bench/flood.py); with
    `signin_rate`, guards sign in to the gate-house panel that often (bench/signins.py)."""
    random.seed(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    if backlog:
        prefill(state, backlog)
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(rig.broker(workdir))
        listener = stack.enter_context(rig.listener(workdir, broker.url, events_only=True))
        inputs = [f'[[gpio.inputs]]\nid = "{RELAY_ID}"\npin = {RELAY_PIN}\nkind = "fire_relay"\ncontact = "NO"\n'
                  "debounce_ms = 0\n"]  # fmt: skip
        text = rig.site_config(state, broker.url, [], [], inputs)
        text += "\n[outbox]\nmax_disk_share = 0.9\nmax_bytes = 4294967296\n"
        if flood_rate:
            private, public = new_keypair(workdir / "keys", "platform-1")
            text += (
                f'\n[commands]\n[[commands.keys]]\nid = "platform-1"\nissuer = "platform"\n'
                f'public_key_file = "{public}"\nroles = ["operator"]\n'
            )
            flood_cmd = rig.python("-m", "bench.flood", "--broker", broker.url, "--key", str(private), "--site",
                                   rig.SITE, "--gateway", rig.GATEWAY, "--target", rig.GATEWAY, "--rate",
                                   str(flood_rate))  # fmt: skip
        if signin_rate:
            panel_port, ca_file = free_port(), workdir / "panel-ca.pem"
            text += _panel(workdir, panel_port, ca_file)
            signin_cmd = rig.python("-m", "bench.signins", "--url", f"https://127.0.0.1:{panel_port}", "--ca",
                                    str(ca_file), "--guard", "wang", "--pin", PIN, "--rate",
                                    str(signin_rate))  # fmt: skip
        factory = contact_pin_factory()
        relay = SimContact(factory, RELAY_PIN, "NO")
        gap = (0.005, 0.015) if backlog else (0.04, 0.12)

        async def main() -> tuple[list[dict[str, Any]], float | None, float]:
            gw = Gateway(parse_config(text, "bench.toml"), pin_factory=factory, clock=Clock())
            task = asyncio.create_task(gw.run())
            try:
                await gw.started.wait()
                await gw.uplink.connected.wait()
                if flood_rate:
                    await gw.uplink.listening.wait()
                    stack.enter_context(rig.process(flood_cmd, workdir / "flood.log"))
                    await asyncio.sleep(2.0)  # the flood at full rate before the first edge
                signing_in = None
                if signin_rate:
                    assert gw.panel is not None
                    await gw.panel.bound.wait()
                    signing_in = stack.enter_context(rig.process(signin_cmd, workdir / "signins.log"))
                    await asyncio.sleep(2.0)
                began = time.monotonic()
                emptied_at: list[float] = []
                empty = asyncio.Event()

                def note_empty() -> None:
                    # The byte count is kept in memory; COUNT(*) on every delete would slow the drain it measures.
                    if gw.outbox.bytes <= 0 and not emptied_at:
                        emptied_at.append(time.monotonic())
                        empty.set()

                gw.outbox.on_delete(note_empty)
                done = await _edges(gw, relay, edges, gap)
                if backlog:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(120):
                            await empty.wait()
                await asyncio.sleep(0.5)
                if signing_in is not None:
                    # While the panel still answers (in a thread: the panel is on this loop), so that it finishes
                    # its request and says how many it signed in.
                    await asyncio.to_thread(rig.stop, signing_in)
                if gw.commands is not None:
                    flood_seen.update(refused=gw.commands.refused, accepted=gw.commands.accepted,
                                      seconds=time.monotonic() - began + 2.0)  # fmt: skip
                return done, (emptied_at[0] if emptied_at else None), began
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        flood_seen: dict[str, float] = {}
        done, emptied, began = asyncio.run(main())
        heard = listener.finish()
    arrivals = [e for e in heard["events"] if e["class"] == "fire" and e["device"] == RELAY_ID]
    latencies: list[tuple[dict[str, Any], float]] = []
    missing = 0
    for i, edge in enumerate(done):
        if i < len(arrivals) and arrivals[i]["state"] == edge["state"]:
            latencies.append((edge, (arrivals[i]["mono"] - edge["mono"]) * 1000))
        else:
            missing += 1
    in_drain = sorted(ms for edge, ms in latencies if emptied is None or edge["mono"] < emptied) if backlog else []
    lat = sorted(ms for _edge, ms in latencies)
    return {
        "load": {"edges": len(done), "backlog_rows": backlog, "debounce_ms": 0},
        "latency_ms": {
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "max": round(lat[-1], 1) if lat else None,
        },
        "during_drain": {
            "edges": len(in_drain),
            "p50": percentile(in_drain, 50),
            "p99": percentile(in_drain, 99),
            "max": round(in_drain[-1], 1) if in_drain else None,
        }
        if backlog
        else None,
        "drain_s": round(emptied - began, 2) if emptied is not None else None,
        "flood": {
            "rate_per_s": flood_rate,
            "handled_per_s": round((flood_seen["refused"] + flood_seen["accepted"]) / flood_seen["seconds"], 1),
            "accepted": flood_seen["accepted"],
        }
        if flood_seen
        else None,
        "signins": _signed_in(workdir / "signins.log") if signin_rate else None,
        "unmatched_edges": missing,
    }
