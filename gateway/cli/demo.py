"""`campus-edge demo`: a simulated campus, a private broker, the gateway, and a console view of what the platform
receives."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import Config, PanelConfig, PanelGuardConfig, RtuBusConfig, TcpBusConfig
from gateway.panel.auth import hash_pin
from gateway.service.app import Gateway
from gateway.uplink.mqtt_client import Client
from simulators.bollard import BollardSim
from simulators.broker import PrivateBroker
from simulators.contacts import contact_pin_factory
from simulators.scenario import Step, load_scenario, parse_scenario
from simulators.site import SimulatedSite

log = logging.getLogger(__name__)

DEMO_GUARD, DEMO_PIN = "demo", "2468"


def builtin_scenario() -> list[Step]:
    """The demo scenario that ships with campus-edge."""
    text = (resources.files("gateway") / "scenarios" / "demo.toml").read_text(encoding="utf-8")
    return parse_scenario(text, "gateway/scenarios/demo.toml")


def simulate(cfg: Config, run_dir: Path, pin_factory: Any) -> SimulatedSite:
    """A simulated site with every bus, device and contact of `cfg`."""
    site = SimulatedSite(pin_factory)
    for bus in cfg.buses:
        if isinstance(bus, RtuBusConfig):
            site.add_rtu_bus(bus.id, run_dir / bus.id, bus.baud)
        else:
            site.add_tcp_bus(bus.id)
    for dev in cfg.devices:
        site.add_device(dev.id, dev.bus, dev.unit, dev.profile)
    for lane in cfg.lanes:
        sim = site.devices.get(lane.controller or "")
        if isinstance(sim, BollardSim):
            sim.holding[107] = 1 if lane.power_loss == "auto_lower" else 0  # built as the lane says it is
    for inp in cfg.gpio.inputs:
        site.add_contact(inp.id, inp.pin, inp.contact)
    return site


def point_at_simulation(cfg: Config, site: SimulatedSite, run_dir: Path, broker_url: str) -> Config:
    """The same site configuration, with its buses, broker, pins and state directory replaced by simulated ones."""
    buses: list[RtuBusConfig | TcpBusConfig] = []
    for bus in cfg.buses:
        if isinstance(bus, RtuBusConfig):
            buses.append(bus.model_copy(update={"port": str(run_dir / bus.id)}))
        else:
            host, port = site.tcp_address(bus.id)
            buses.append(bus.model_copy(update={"host": host, "port": port}))
    mqtt = cfg.mqtt.model_copy(update={"urls": (broker_url,), "allow_plaintext": True})
    return cfg.model_copy(
        update={
            "buses": tuple(buses),
            "mqtt": mqtt,
            "gpio": cfg.gpio.model_copy(update={"pin_factory": "mock"}),
            "gateway": cfg.gateway.model_copy(update={"state_dir": run_dir / "state"}),
            # The demo compresses hours into seconds: a warning that opens and closes within it is shown, not counted.
            "alarms": cfg.alarms.model_copy(update={"chatter_s": 1.0}),
        }
    )


@dataclass
class PlatformView:
    """What a platform subscriber saw: every message, de-duplicated by seq."""

    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    messages: int = 0
    fire_seq: int | None = None
    fire_at: float | None = None

    def note(self, seqs: list[int]) -> None:
        for s in seqs:
            if s in self.seqs:
                self.duplicates += 1
            self.seqs.add(s)

    def gaps(self) -> list[int]:
        """Sequence numbers missing between the first and the last seen."""
        if not self.seqs:
            return []
        lo, hi = min(self.seqs), max(self.seqs)
        return [s for s in range(lo, hi + 1) if s not in self.seqs]


_CLASS_ZH = {
    "fire": "火警",
    "prealarm": "预警",
    "fault": "故障",
    "supervisory": "监管",
    "shielded": "屏蔽",
    "tamper": "防拆",
    "maintenance": "维护",
    "door": "门磁",
    "trouble": "控制器故障输出",
    "bollard": "升降柱",
    "offline": "设备离线",
    "online": "设备恢复在线",
}


def describe(topic: str, payload: dict[str, Any], prefix: str) -> str:
    """One console line for one message."""
    kind = topic.removeprefix(prefix + "/")
    if kind == "status":
        return f"status      {payload['state']:<7} version {payload['version']} boot {payload['boot_id'][:8]}"
    if kind == "telemetry":
        readings = payload["readings"]
        first = readings[0]["seq"]
        last = readings[-1]["seq"]
        shown = ", ".join(f"{r['device']}.{r['point']}={json.dumps(r['value'])}" for r in readings[:3])
        more = f" +{len(readings) - 3} more" if len(readings) > 3 else ""
        return f"telemetry   {len(readings):>3} readings seq {first}-{last}: {shown}{more}"
    if kind.startswith("event/"):
        cls = payload["class"]
        mark = "ALARM  " if payload["severity"] == "alarm" else payload["severity"].ljust(7)
        line = (
            f"event       {mark} {cls} {_CLASS_ZH.get(cls, '')} {payload['state']}: "
            f"{payload['device']}.{payload['point']} = {json.dumps(payload['value'])} (seq {payload['seq']})"
        )
        detail = payload.get("detail", {})
        if "text_zh" in detail:  # a bollard decision: what the guard reads
            line += f"\n{'':21}{detail['text_zh']}  /  {detail['text_en']}"
        return line
    if kind.startswith("state/"):
        online = "online" if payload["online"] else "offline"
        return f"state       {payload['device']} {online}, {len(payload['points'])} points (retained)"
    if kind == "alarms":
        shown = ", ".join(f"{a['alarm_id']}{'' if a['active'] else ' (cleared)'}" for a in payload["alarms"])
        return f"alarms      {len(payload['alarms'])} open (retained): {shown or '-'}"
    if kind.startswith("report/"):
        text = "\n".join(f"{'':21}{line}" for line in payload["readable"]["zh-CN"].splitlines())
        text += "\n" + "\n".join(f"{'':21}{line}" for line in payload["readable"]["en"].splitlines())
        return f"report      {payload['period']} hazard check (seq {payload['seq']})\n{text}"
    return f"{kind} {payload}"


async def watch(url: str, prefix: str, view: PlatformView, out: TextIO, started: float, ready: asyncio.Event) -> None:
    """Subscribe as the platform would and print what arrives."""
    host_port = url.removeprefix("mqtt://")
    host, _, port = host_port.partition(":")
    loop = asyncio.get_running_loop()
    async with Client(host, int(port or 1883), identifier="campus-edge-demo-view") as client:
        await client.subscribe(prefix + "/#", qos=1)
        ready.set()
        async for msg in client.messages:
            view.messages += 1
            if not isinstance(msg.payload, bytes | bytearray):
                continue
            payload = json.loads(msg.payload)
            topic = str(msg.topic)
            if "readings" in payload:
                view.note([r["seq"] for r in payload["readings"]])
            elif "seq" in payload:
                view.note([payload["seq"]])
                if payload.get("class") == "fire" and payload.get("state") == "raised" and view.fire_seq is None:
                    view.fire_seq = payload["seq"]
                    view.fire_at = loop.time() - started
            print(f"  +{loop.time() - started:6.2f}s  {describe(topic, payload, prefix)}", file=out, flush=True)


def demo_panel(run_dir: Path, port: int) -> PanelConfig:
    """The guards' panel for the demo: on loopback, with a self-signed certificate made now and one guard (an
    operator) whose PIN the console prints. A site's panel uses the gateway's own certificate and a PIN per guard
    (docs/guard-panel.md)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "campus-edge demo panel")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = run_dir / "demo-panel.crt", run_dir / "demo-panel.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)  # also when a kept --state-dir had one
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    guard = PanelGuardConfig(id=DEMO_GUARD, name="Demo guard", pin_hash=hash_pin(DEMO_PIN), role="operator")
    return PanelConfig(address="127.0.0.1", port=port, cert_file=cert_file, key_file=key_file, guards=(guard,))


async def _announce_panel(gateway: Gateway, out: TextIO) -> None:
    assert gateway.panel is not None
    await gateway.panel.bound.wait()
    print(f"guard panel: https://127.0.0.1:{gateway.panel.port}/ (a self-signed certificate: let the browser accept "
          f"it), guard {DEMO_GUARD}, PIN {DEMO_PIN}", file=out, flush=True)  # fmt: skip


async def run_demo(
    cfg: Config,
    *,
    duration_s: float,
    scenario: Path | None,
    broker_url: str | None,
    state_dir: Path | None,
    out: TextIO = sys.stdout,
    panel_port: int | None = None,
) -> PlatformView:
    """Run the demo and return what the platform saw; with `panel_port`, the guards' panel on it (0: any)."""
    steps = load_scenario(scenario) if scenario else builtin_scenario()
    with contextlib.ExitStack() as stack:
        run_dir = state_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="campus-edge-demo-")))
        run_dir.mkdir(parents=True, exist_ok=True)
        url = broker_url
        if url is None:
            broker = stack.enter_context(PrivateBroker(run_dir / "broker"))
            url = broker.url
            print(f"private mosquitto on {url}", file=out)
        factory = contact_pin_factory()
        view = PlatformView()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with simulate(cfg, run_dir, factory) as site:
            live = point_at_simulation(cfg, site, run_dir, url)
            if panel_port is not None:
                live = live.model_copy(update={"panel": demo_panel(run_dir, panel_port)})
            gateway = Gateway(live, pin_factory=factory)
            prefix = gateway.topics.prefix
            print(f"site {cfg.site.id}, gateway {cfg.gateway.id}: watching {prefix}/# as the platform", file=out)

            def guard(step: Step) -> None:
                # The guard at the gate house presses a button: the same path as the GPIO buttons take.
                gateway.bollards.guard_input(f"bollard_{step.action.removeprefix('guard_')}", step.target)

            for lane in live.lanes:
                site.externals[lane.id] = guard

            def gateway_action(step: Step) -> None:
                # The safety officer does not wait for 07:00 in a demo: the daily report is written now.
                gateway.inspector.publish("daily", gateway.topics.report("daily"))

            site.externals[live.gateway.id] = gateway_action

            def on_step(step: Step) -> None:
                print(f"  +{loop.time() - started:6.2f}s  >>> {step.note or step.action}", file=out, flush=True)

            ready = asyncio.Event()
            try:
                async with asyncio.timeout(duration_s), asyncio.TaskGroup() as tg:
                    tg.create_task(watch(url, prefix, view, out, started, ready), name="platform-view")
                    await ready.wait()
                    tg.create_task(gateway.run(), name="gateway")
                    if gateway.panel is not None:
                        tg.create_task(_announce_panel(gateway, out), name="panel-address")
                    tg.create_task(site.play(steps, on_step), name="scenario")
            except TimeoutError:
                pass
    gaps = view.gaps()
    print(
        f"\nplatform received {view.messages} messages, seq {min(view.seqs, default=0)}-{max(view.seqs, default=0)}, "
        f"{len(gaps)} missing, {view.duplicates} duplicates",
        file=out,
    )
    if view.fire_seq is not None and view.fire_at is not None:
        print(f"fire alarm reached the platform as seq {view.fire_seq} at +{view.fire_at:.2f}s", file=out)
    else:
        print("no fire alarm reached the platform", file=out)
    return view
