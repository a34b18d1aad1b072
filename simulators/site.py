"""A simulated site: Modbus servers (TCP and pseudo-terminal RTU), devices on them, and contacts on mock pins."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from simulators.bollard import BollardSim, BollardState, Source
from simulators.catalogue import make_device
from simulators.contacts import SimContact
from simulators.devices import FirePanelSim, SimDevice, SmokeDetectorSim
from simulators.door_node import DoorNodeSim
from simulators.modbus_server import SimServer
from simulators.pty import PtyPair
from simulators.scenario import (
    ScenarioError,
    Step,
    fault_setting,
    flag,
    modbus_fault_setting,
    no_value,
    power_loss_behaviour,
)

log = logging.getLogger(__name__)


@dataclass
class _Bus:
    name: str
    kind: Literal["rtu", "tcp"]
    devices: dict[int, SimDevice] = field(default_factory=dict)
    gateway_end: Path | None = None
    device_end: Path | None = None
    baud: int = 9600
    server: SimServer | None = None


class SimulatedSite:
    """Everything the gateway talks to, simulated; an async context manager that starts and stops it all."""

    def __init__(self, pin_factory: Any = None) -> None:
        self.pin_factory = pin_factory
        self.devices: dict[str, SimDevice] = {}
        self.contacts: dict[str, SimContact] = {}
        # Targets handled outside the simulators (e.g. the demo's guard pressing buttons), by target id.
        self.externals: dict[str, Callable[[Step], None]] = {}
        self._buses: dict[str, _Bus] = {}
        self._stack = contextlib.AsyncExitStack()

    def add_rtu_bus(self, name: str, gateway_end: Path, baud: int = 9600) -> None:
        """An RS-485 line: the gateway opens `gateway_end`, a pty linked to the simulator's end."""
        device_end = gateway_end.with_name(gateway_end.name + ".device")
        self._buses[name] = _Bus(name, "rtu", gateway_end=gateway_end, device_end=device_end, baud=baud)

    def add_tcp_bus(self, name: str) -> None:
        """A Modbus TCP endpoint on a free loopback port (see `tcp_address` once started)."""
        self._buses[name] = _Bus(name, "tcp")

    def add_device(self, device_id: str, bus: str, unit: int, model: str) -> SimDevice:
        """A device of a profile model at a unit id on a bus."""
        dev = make_device(model)
        self._buses[bus].devices[unit] = dev
        self.devices[device_id] = dev
        return dev

    def add_contact(self, input_id: str, pin: int | str, contact: Literal["NC", "NO"]) -> SimContact:
        """A contact on a mock GPIO pin."""
        sim = SimContact(self.pin_factory, pin, contact)
        self.contacts[input_id] = sim
        return sim

    def tcp_address(self, bus: str) -> tuple[str, int]:
        """Where a started TCP bus listens."""
        server = self._buses[bus].server
        if server is None:
            raise RuntimeError(f"bus {bus} is not started")
        return server.address

    async def __aenter__(self) -> SimulatedSite:
        # Entered into a stack of its own first: if a bus fails to start, those started are closed on the way out;
        # once all are up, the site's stack takes them over.
        async with contextlib.AsyncExitStack() as starting:
            for bus in self._buses.values():
                if bus.kind == "rtu":
                    assert bus.gateway_end is not None
                    assert bus.device_end is not None
                    await starting.enter_async_context(PtyPair(bus.gateway_end, bus.device_end))
                    server = SimServer.rtu(bus.devices, str(bus.device_end), bus.baud)
                else:
                    server = SimServer.tcp(bus.devices)
                bus.server = await starting.enter_async_context(server)
            self._stack.push_async_exit(starting.pop_all())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def apply(self, step: Step) -> None:
        """Carry out one scenario step."""
        if step.target in self.externals:
            self.externals[step.target](step)
            return
        target = self.contacts.get(step.target) or self.devices.get(step.target)
        if target is None:
            raise ScenarioError(f"step at {step.at_s:g} s: no simulated device or contact {step.target!r}")
        action = step.action
        if isinstance(target, SimContact):
            if action not in ("open", "close", "activate", "deactivate"):
                raise ScenarioError(f"step at {step.at_s:g} s: a contact cannot {action!r}")
            target.set(action in ("open", "activate"))
            return
        if action == "silent":
            target.faults.silent = bool(step.value)
        elif action == "modbus_fault":
            name, value = modbus_fault_setting(step)
            setattr(target.faults, name, value)
        elif isinstance(target, SmokeDetectorSim) and action == "flag":
            name, _, level = str(step.value).partition("=")
            if name not in target.flags or level not in ("true", "false"):
                raise ScenarioError(f'step at {step.at_s:g} s: expected value = "FLAG=true|false", got {step.value!r}')
            target.set(**{name: level == "true"})
        elif isinstance(target, SmokeDetectorSim) and action == "smoke":
            target.set_smoke(float(step.value or 0))
        elif isinstance(target, SmokeDetectorSim | FirePanelSim) and action == "reset":
            target.reset()
        elif isinstance(target, FirePanelSim) and action == "alarm_point":
            target.alarm_point(int(step.value or 0))
        elif isinstance(target, FirePanelSim) and action == "clear_point":
            target.clear_point(int(step.value or 0))
        elif isinstance(target, BollardSim) and action == "state":
            target.set_state(BollardState[str(step.value).upper()])
        elif isinstance(target, BollardSim) and action == "input":
            name, _, level = str(step.value).partition("=")
            if name not in target.inputs or level not in ("true", "false"):
                raise ScenarioError(f'step at {step.at_s:g} s: expected value = "INPUT=true|false", got {step.value!r}')
            target.set_input(name, level == "true")
        elif isinstance(target, BollardSim) and action == "position":
            target.set_state(target.state, int(step.value or 0))
        elif isinstance(target, DoorNodeSim) and action == "loop":
            door, _, state = str(step.value).partition("=")
            if not door.isdigit() or state not in ("normal", "open", "short", "cut"):
                raise ScenarioError(f'step at {step.at_s:g} s: expected value = "DOOR=normal|open|short|cut", '
                                    f"got {step.value!r}")  # fmt: skip
            try:
                target.set_loop(int(door), state)  # type: ignore[arg-type]  # checked just above
            except ValueError as exc:
                raise ScenarioError(f"step at {step.at_s:g} s: {exc}") from None
        elif isinstance(target, BollardSim) and action in _BOLLARD_ACTIONS:
            _BOLLARD_ACTIONS[action](target, step)
        else:
            raise ScenarioError(f"step at {step.at_s:g} s: {target.model} {step.target!r} cannot {action!r}")

    async def play(self, steps: list[Step], on_step: Callable[[Step], None] | None = None) -> None:
        """Apply steps at their times (from now)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for step in steps:
            delay = start + step.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.apply(step)
            if on_step is not None:
                on_step(step)


def _fault(sim: BollardSim, step: Step) -> None:
    """The model is brought up to now first, so the fault starts at the step's time, and acts at once after."""
    name, value = fault_setting(step)
    sim.tick()
    setattr(sim.mech, name, value)
    sim.tick()


def _power_loss(sim: BollardSim, step: Step) -> None:
    """Holding register 107 is read-only over Modbus: it reflects how the hydraulics are built."""
    sim.holding[107] = power_loss_behaviour(step)


def _power_off(sim: BollardSim, step: Step) -> None:
    no_value(step)
    sim.power_off()


def _power_on(sim: BollardSim, step: Step) -> None:
    no_value(step)
    sim.power_on()


def _efo_key(sim: BollardSim, step: Step) -> None:
    sim.set_efo_key(flag(step))


def _reset_fault(sim: BollardSim, step: Step) -> None:
    """The technician's reset at the controller: a local command, refused (see `refusals`) while the cause stays."""
    no_value(step)
    sim.command("cmd_reset_fault", Source.LOCAL_BUTTON)


_BOLLARD_ACTIONS: dict[str, Callable[[BollardSim, Step], None]] = {
    "fault": _fault,
    "power_loss": _power_loss,
    "power_off": _power_off,
    "power_on": _power_on,
    "efo_key": _efo_key,
    "reset_fault": _reset_fault,
}
