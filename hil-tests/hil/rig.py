"""A rig and the site a scenario runs on it: the real gateway, a local broker, a platform view, and the things a
scenario can do to the field (open a door, put a panel into fire, block a loop, kill a device, cut the broker).

Two backends build the same site from a rig description (`hil.rigfile`):

- virtual: every RS-485 line is a pseudo-terminal pair, every TCP line a loopback port, the GPIO pins are gpiozero
  mock pins and each loop-back wire is a mock output pin that drives its input pin, as the jumper on a bench does;
- bench: the simulators answer on the USB RS-485 adapter the rig names (where a device is simulated), real devices
  answer for themselves, and the loop-back outputs are driven on the Pi's own pins.

Everything after that is shared: the simulators, the broker, the gateway (`gateway.service.app.Gateway`, configured
from a TOML file written from the rig and loaded as at a site), the platform view and the scenario actions. So the
scenario bodies cannot tell the backends apart, and a pass on the virtual rig means the same code paths a bench
exercises, down to the serial device and the pin factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiomqtt
import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockPin

from drivers.aio import reraise_if_cancelling
from gateway.base.clock import Clock
from gateway.cli.watch import Ledger, Watcher
from gateway.config import load_config
from gateway.service.app import Gateway
from gateway.uplink.mqtt_client import Client
from hil.rigfile import DeviceConfig, LaneRigConfig, LineConfig, LoopbackConfig, RigDescription
from simulators.bollard import BollardSim
from simulators.broker import PrivateBroker
from simulators.catalogue import make_device
from simulators.contacts import ContactPin, contact_pin_factory
from simulators.devices import FirePanelSim, SimDevice, SmokeDetectorSim
from simulators.modbus_server import SimServer
from simulators.pty import PtyPair
from tests.gateway_harness import Signal, running_gateway, watch_gateway

log = logging.getLogger(__name__)

SITE = "hil-school"
GATEWAY = "gw-hil"
PREFIX = f"campus/v1/{SITE}/{GATEWAY}"


def skip(rig: RigDescription, why: str) -> NoReturn:
    """Skip the scenario, naming the rig and what it lacks."""
    pytest.skip(f"rig {rig.rig.name}: {why}")


# -- the platform -------------------------------------------------------------------------------------------------


@dataclass
class PlatformView(Watcher):
    """What the platform received: `campus-edge watch`'s accounting (contract check, a ledger of sequence numbers
    per gateway) plus every message kept, so that a scenario can wait for the one it expects."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    listeners: list[Callable[[], None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def handle(self, topic: str, raw: bytes) -> None:
        super().handle(topic, raw)
        with contextlib.suppress(ValueError):
            self.received.append((topic, json.loads(raw)))
        self.arrived.set()
        for listener in self.listeners:
            listener()

    @property
    def ledger(self) -> Ledger:
        """The gateway's sequence numbers as received (empty until the first arrives)."""
        return self.ledgers.setdefault(GATEWAY, Ledger())

    async def wait_for(
        self, predicate: Callable[[str, dict[str, Any]], bool], timeout_s: float = 20.0
    ) -> tuple[str, dict[str, Any]]:
        """The first message, received already or still to come, that satisfies `predicate`."""
        seen = 0
        async with asyncio.timeout(timeout_s):
            while True:
                for topic, payload in self.received[seen:]:
                    if predicate(topic, payload):
                        return topic, payload
                seen = len(self.received)
                self.arrived.clear()
                await self.arrived.wait()


async def follow(view: PlatformView, url: str, client_id: str, ready: asyncio.Event) -> None:
    """Subscribe as the platform does, with a persistent session so a broker outage loses nothing on this side."""
    host, _, port = url.removeprefix("mqtt://").partition(":")
    while True:
        try:
            async with Client(host, int(port), identifier=client_id, clean_session=False) as client:
                await client.subscribe(view.topic_filter(), qos=1)
                ready.set()
                async for msg in client.messages:
                    if isinstance(msg.payload, bytes | bytearray):
                        view.handle(str(msg.topic), bytes(msg.payload))
        except aiomqtt.MqttError as exc:
            reraise_if_cancelling(exc)
            await asyncio.sleep(0.1)  # the broker is down: try again soon, it is our own


# -- the two backends ---------------------------------------------------------------------------------------------


class WirePin(MockPin):  # type: ignore[misc]
    """A mock output pin with a jumper to an input pin: the level it drives is the level the input reads."""

    def __init__(self, factory: Any, info: Any, input_pin: ContactPin) -> None:
        self.input_pin = input_pin
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        self.input_pin.drive(value)
        return changed


class Backend:
    """What differs between rigs: where a serial line's two ends are, and whose pins the GPIO are."""

    def unavailable(self, desc: RigDescription) -> str | None:
        """Why this machine cannot be the rig (skip the scenarios), or None."""
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            return "mosquitto is not installed (scripts/bootstrap installs it)"
        return None

    def problems(self, desc: RigDescription) -> list[str]:
        """What is wrong with a rig that should be there (fail the run): missing adapters, pins that cannot open."""
        return []

    async def serial_ends(self, line: LineConfig, work: Path, stack: contextlib.AsyncExitStack) -> tuple[str, str]:
        """(the gateway's end, the simulators' end) of an RS-485 line."""
        raise NotImplementedError

    def pin_factory(self) -> Any:
        """The pin factory the gateway and the rig's outputs share (None: gpiozero's default, the Pi's pins)."""
        raise NotImplementedError

    def wire(self, factory: Any, loopback: LoopbackConfig) -> None:
        """Whatever joins a loop-back's output to its input, before either is opened."""

    @property
    def line_timing(self) -> bool:
        """Whether the simulators must add the wire time a real line takes (a pty delivers at once)."""
        return False

    @property
    def mock_pins(self) -> bool:
        """Whether the pins are gpiozero's mock ones (said in the gateway's configuration)."""
        return False


class VirtualBackend(Backend):
    """Pseudo-terminals, loopback TCP and mock pins."""

    def unavailable(self, desc: RigDescription) -> str | None:
        needs_socat = any(line.type == "rtu" for line in desc.lines)
        if needs_socat and shutil.which("socat") is None:
            return "socat is not installed (scripts/bootstrap installs it)"
        return super().unavailable(desc)

    async def serial_ends(self, line: LineConfig, work: Path, stack: contextlib.AsyncExitStack) -> tuple[str, str]:
        pair = await stack.enter_async_context(PtyPair(work / f"{line.id}.gw", work / f"{line.id}.dev"))
        return str(pair.gateway_end), str(pair.device_end)

    def __init__(self) -> None:
        # One factory for the whole run, as a bench has one set of pins: a pin a scenario's gateway failed to
        # release is still reserved for the next scenario, here as there.
        self._factory: Any = None

    def pin_factory(self) -> Any:
        if self._factory is None:
            self._factory = contact_pin_factory()
        return self._factory

    def wire(self, factory: Any, loopback: LoopbackConfig) -> None:
        factory.pin(loopback.output, pin_class=WirePin, input_pin=factory.pin(loopback.input))

    @property
    def line_timing(self) -> bool:
        return True

    @property
    def mock_pins(self) -> bool:
        return True


class BenchBackend(Backend):
    """USB RS-485 adapters and the Raspberry Pi's GPIO header."""

    def problems(self, desc: RigDescription) -> list[str]:
        out = []
        for line in desc.lines:
            for end in ("gateway_port", "device_port"):
                path = getattr(line, end)
                if path is not None and not Path(path).exists():
                    out.append(f"lines.{line.id}.{end}: {path} does not exist (adapter unplugged or renamed?)")
        if desc.loopbacks:
            try:
                from gpiozero import Device  # noqa: PLC0415

                factory = Device._default_pin_factory()  # gpiozero's own choice, as the gateway's
            except Exception as exc:  # noqa: BLE001 (any reason gpiozero gives is the answer)
                out.append(f"loopbacks: gpiozero cannot open this machine's pins: {exc}")
            else:
                if type(factory).__name__.startswith("Mock"):
                    out.append("loopbacks: gpiozero's default pin factory is a mock one (GPIOZERO_PIN_FACTORY?)")
                factory.close()
        return out

    async def serial_ends(self, line: LineConfig, work: Path, stack: contextlib.AsyncExitStack) -> tuple[str, str]:
        assert line.gateway_port is not None  # the rig file says so for a bench (hil.rigfile)
        return line.gateway_port, line.device_port or ""

    def pin_factory(self) -> Any:
        return None


BACKENDS: dict[str, type[Backend]] = {"virtual": VirtualBackend, "bench": BenchBackend}


# -- the rig and its sites ----------------------------------------------------------------------------------------


class Rig:
    """A described rig: what scenarios may ask of it, and `site()` to run one."""

    def __init__(self, desc: RigDescription) -> None:
        self.desc = desc
        self.backend = BACKENDS[desc.rig.backend]()

    @property
    def name(self) -> str:
        return self.desc.rig.name

    def simulated(self, profile: str, *, line_of: str | None = None, besides: str | None = None) -> str:
        """The id of a simulated device of `profile` (on the line of `line_of`, other than `besides`), or skip."""
        for d in self.desc.devices:
            if d.profile != profile or d.real or d.id == besides:
                continue
            if line_of is None or d.line == self.desc.device(line_of).line:
                return d.id
        where = f" on the line of {line_of}" if line_of else ""
        skip(self.desc, f"no simulated {profile}{where}: a real one cannot be driven from here")

    def loopback(self, kind: str) -> str:
        """The id of a GPIO loop-back wired as a `kind` input, or skip."""
        for lb in self.desc.loopbacks:
            if lb.kind == kind:
                return lb.id
        skip(self.desc, f"no GPIO loop-back wired as a {kind} input")

    def lane(self) -> str:
        """The id of a lane whose controller is simulated (the rig can put a vehicle on its loop), or skip."""
        for lane in self.desc.lanes:
            if not self.desc.device(lane.controller).real:
                return lane.id
        if self.desc.lanes:
            skip(self.desc, "every lane has a real controller: the rig cannot put a vehicle on its loop")
        skip(self.desc, "no bollard lane")

    @contextlib.asynccontextmanager
    async def site(self, work: Path) -> AsyncIterator[Site]:
        """The rig brought up for one scenario: broker, simulators, loop-backs, platform view, then the gateway."""
        async with Site(self, work) as site:
            yield site


class Site:
    """One scenario's run on the rig. Scenario actions act on the field; `platform` is what reached the platform."""

    def __init__(self, rig: Rig, work: Path) -> None:
        self.rig = rig
        self.desc = rig.desc
        self.work = work
        self.broker = PrivateBroker(work / "broker")
        self.platform = PlatformView(SITE, GATEWAY, out=io.StringIO())
        self.sims: dict[str, SimDevice] = {}
        self.outputs: dict[str, tuple[DigitalOutputDevice, LoopbackConfig]] = {}
        self._stack = contextlib.AsyncExitStack()
        self.config_path = work / "gateway.toml"  # the gateway's configuration, written from the rig
        self._gateway: Gateway | None = None
        self._signal: Signal | None = None

    # -- bringing it up

    async def __aenter__(self) -> Site:
        self.work.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as starting:
            self.broker.start()
            starting.callback(self.broker.stop)
            buses = [await self._start_line(line, starting) for line in self.desc.lines]
            factory = self.rig.backend.pin_factory()
            for lb in self.desc.loopbacks:
                self.rig.backend.wire(factory, lb)
                out = DigitalOutputDevice(lb.output, initial_value=_level(lb, False), pin_factory=factory)
                starting.callback(out.close)
                self.outputs[lb.id] = (out, lb)
            self.config_path.write_text(self._gateway_toml(buses), encoding="utf-8")
            cfg = load_config(self.config_path)
            ready = asyncio.Event()
            client_id = f"hil-platform-{uuid.uuid4().hex[:8]}"
            platform = asyncio.create_task(follow(self.platform, self.broker.url, client_id, ready), name="platform")
            starting.push_async_callback(_cancel, platform)
            async with asyncio.timeout(10):
                await ready.wait()
            # A synchronised clock is assumed: the bench's clock is not what the scenarios test, and a schedule is
            # judged only on one (an isolated bench has no NTP).
            self._gateway = await starting.enter_async_context(running_gateway(cfg, factory, Clock(assume_synced=True)))
            self._signal = watch_gateway(self._gateway)
            self.platform.listeners.append(self._signal)
            self._stack.push_async_exit(starting.pop_all())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start_line(self, line: LineConfig, stack: contextlib.AsyncExitStack) -> dict[str, Any]:
        """Start the simulators of one line and return its [[buses]] table for the gateway."""
        sims: dict[int, SimDevice] = {}
        for d in self.desc.on_line(line.id):
            if not d.real:
                sims[d.unit] = self.sims[d.id] = _simulator(d, self.desc)
        common = {"id": line.id, "timeout_ms": line.timeout_ms, "retries": line.retries}
        if line.type == "rtu":
            gateway_end, device_end = await self.rig.backend.serial_ends(line, self.work, stack)
            if sims:
                await stack.enter_async_context(
                    SimServer.rtu(sims, device_end, line.baud, line_timing=self.rig.backend.line_timing)
                )
            serial = {"port": gateway_end, "baud": line.baud, "parity": line.parity, "stopbits": line.stopbits}
            return common | {"type": "rtu"} | serial
        if sims:
            server = await stack.enter_async_context(SimServer.tcp(sims))
            host, port = server.address
        else:
            assert line.host is not None
            assert line.port is not None
            host, port = line.host, line.port
        return common | {"type": "tcp", "host": host, "port": port}

    def _gateway_toml(self, buses: list[dict[str, Any]]) -> str:
        """The site as an installer would configure it, with timing short enough for a test.

        The closed-campus schedule spans every hour of every day, so doors armed by the schedule (the default) are
        armed; lanes are not scheduled, so the schedule never raises one behind a scenario's back.
        """
        every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        mqtt = {"urls": [self.broker.url], "allow_plaintext": True, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
        parts = [
            _table("site", {"id": SITE, "name": f"hardware-in-the-loop rig {self.desc.rig.name}"}),
            _table("gateway", {"id": GATEWAY, "state_dir": str(self.work / "state")}),
            _table("mqtt", mqtt),
            _table("schedule", {"timezone": "UTC"}),
            _table("schedule.periods", {"days": every_day, "start": "00:00", "end": "00:00"}, array=True),
            _table("gpio", {"pin_factory": "mock" if self.rig.backend.mock_pins else "default"}),
        ]
        parts += [_table("buses", b, array=True) for b in buses]
        # A dead device is declared offline after two failed polls and a second: a scenario's time, not a site's.
        offline = {"offline_after_polls": 2, "offline_after_s": 1.0, "backoff_max_s": 1.0}
        for d in self.desc.devices:
            device = {"id": d.id, "bus": d.line, "unit": d.unit, "profile": d.profile}
            parts.append(_table("devices", device | {"poll_interval_s": d.poll_interval_s} | offline, array=True))
        for lb in self.desc.loopbacks:
            contact = {"id": lb.id, "pin": lb.input, "kind": lb.kind, "contact": lb.contact, "debounce_ms": 20}
            parts.append(_table("gpio.inputs", contact, array=True))
        for lane in self.desc.lanes:
            ctl = {"controller": lane.controller, "power_loss": lane.power_loss, "fire_lane": lane.fire_lane}
            parts.append(_table("lanes", {"id": lane.id} | ctl | {"scheduled": False}, array=True))
        return "\n".join(parts)

    # -- what the scenarios see

    @property
    def gateway(self) -> Gateway:
        """The gateway under test."""
        assert self._gateway is not None
        return self._gateway

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Until `predicate()` holds, looked at on every commit, poll, link change and arrival at the platform."""
        assert self._signal is not None
        await self._signal.until(predicate, timeout_s)

    def sim(self, device: str) -> SimDevice:
        """The simulator playing `device`."""
        return self.sims[device]

    # -- what the scenarios do to the field

    def set_contact(self, loopback: str, active: bool) -> None:
        """Drive a loop-back as its contact would be: `active` is the abnormal state (a door open)."""
        out, lb = self.outputs[loopback]
        out.value = _level(lb, active)

    def open_door(self, door: str) -> None:
        self.set_contact(door, True)

    def close_door(self, door: str) -> None:
        self.set_contact(door, False)

    def fire(self, panel: str, point: int) -> None:
        """A detector or call point `point` of the panel goes into fire."""
        sim = self.sims[panel]
        assert isinstance(sim, FirePanelSim)
        sim.alarm_point(point)

    def smoke(self, detector: str, obscuration_pct_per_m: float) -> None:
        sim = self.sims[detector]
        assert isinstance(sim, SmokeDetectorSim)
        sim.set_smoke(obscuration_pct_per_m)

    def block_loop(self, lane: str, occupied: bool = True) -> None:
        """A vehicle stands on (or leaves) the lane's loop A."""
        sim = self._controller(lane)
        sim.set_input("loop_a_occupied", occupied)

    def bollard(self, lane: str) -> BollardSim:
        return self._controller(lane)

    def kill(self, device: str, dead: bool = True) -> None:
        """The device stops answering on its line (dead, unpowered, its wire cut), or answers again."""
        self.sims[device].faults.silent = dead

    def cut_broker(self) -> None:
        """The platform's broker goes away (stopped: what it had accepted it keeps, as a broker cluster does)."""
        self.broker.stop()

    def restore_broker(self) -> None:
        self.broker.start()

    @contextlib.contextmanager
    def smoke_wave(self, detector: str) -> Iterator[None]:
        """Smoke rising and falling at a simulated detector, so telemetry flows the whole time."""

        async def wave() -> None:
            level = 0
            while True:
                level = (level + 17) % 280
                self.smoke(detector, level / 100)
                await asyncio.sleep(0.02)

        task = asyncio.create_task(wave(), name=f"smoke-wave[{detector}]")
        try:
            yield
        finally:
            task.cancel()

    def _controller(self, lane: str) -> BollardSim:
        cfg: LaneRigConfig = next(x for x in self.desc.lanes if x.id == lane)
        sim = self.sims[cfg.controller]
        assert isinstance(sim, BollardSim)
        return sim


def _simulator(d: DeviceConfig, desc: RigDescription) -> SimDevice:
    sim = make_device(d.profile)
    for lane in desc.lanes:
        if lane.controller == d.id and isinstance(sim, BollardSim):
            sim.holding[107] = 1 if lane.power_loss == "auto_lower" else 0  # built as the lane says it is
    return sim


def _level(lb: LoopbackConfig, active: bool) -> bool:
    """The output level that plays the contact: low where it would be closed (to ground), high where open."""
    closed = not active if lb.contact == "NC" else active
    return not closed


def _table(name: str, values: dict[str, Any], array: bool = False) -> str:
    """One TOML table; JSON's strings, numbers, booleans and lists are TOML's too."""
    head = f"[[{name}]]" if array else f"[{name}]"
    return head + "\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
