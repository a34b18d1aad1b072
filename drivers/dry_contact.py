"""A bollard controller wired by dry contacts (devices.md 3.2): relays on GPIO pins close its RAISE, LOWER and STOP
terminals (and switch its warning lights and buzzer), and its limit switches and safety devices are read as
contacts on GPIO inputs.

Such a controller reports no state, no fault code and no pre-warning of its own: the driver only sets relays and
samples contacts. What the levels mean (the lane's state, when to warn, how long to pulse) is the gateway's job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from drivers.gpio import Contact

RELAYS = ("raise", "lower", "stop", "warning", "efo")
"""Outputs: the controller's command terminals, the warning lights and buzzer, and an EFO terminal if it has one."""

INPUTS = (
    "limit_up",
    "limit_down",
    "loop_a_occupied",
    "loop_b_occupied",
    "photocell_blocked",
    "pressure_edge_active",
    "estop_pressed",
    "local_mode",
    "manual_release_engaged",
)
"""Contacts, named as the Modbus controller's discrete inputs so the gateway reads both kinds alike."""


@dataclass(frozen=True, slots=True)
class InputPin:
    """A contact on a GPIO pin (internal pull-up, contact to ground). `contact` says when it reads *active*:
    NO = active when closed (limit switches), NC = active when open (safety devices: a cut wire reads occupied)."""

    pin: int | str
    contact: Contact


class DryContactController:
    """The pins of one dry-contact controller. Every relay starts released."""

    def __init__(
        self,
        name: str,
        relays: Mapping[str, int | str],
        inputs: Mapping[str, InputPin],
        *,
        active_high: bool = True,
        pin_factory: Any = None,
    ) -> None:
        unknown = (set(relays) - set(RELAYS)) | (set(inputs) - set(INPUTS))
        if unknown:
            raise ValueError(f"{name}: no such relay or input: {sorted(unknown)}")
        self.name = name
        self._relays: dict[str, DigitalOutputDevice] = {}
        self._inputs: dict[str, tuple[DigitalInputDevice, Contact]] = {}
        with contextlib.ExitStack() as claiming:
            claiming.callback(self.close)  # a pin that cannot be had releases those already claimed
            for relay, pin in relays.items():
                self._relays[relay] = DigitalOutputDevice(
                    pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
                )
            for input_name, wired in inputs.items():
                device = DigitalInputDevice(wired.pin, pull_up=True, pin_factory=pin_factory)
                self._inputs[input_name] = (device, wired.contact)
            claiming.pop_all()

    @property
    def relays(self) -> frozenset[str]:
        """The relays this controller has."""
        return frozenset(self._relays)

    @property
    def inputs(self) -> frozenset[str]:
        """The inputs wired to this controller."""
        return frozenset(self._inputs)

    def set_relay(self, relay: str, on: bool) -> None:
        """Energise or release one relay (KeyError for one that is not wired)."""
        device = self._relays[relay]
        if on:
            device.on()
        else:
            device.off()

    def relay_is_on(self, relay: str) -> bool:
        """Whether a relay is energised now."""
        return bool(self._relays[relay].value)

    def read(self) -> dict[str, bool]:
        """Every wired input: True when active (at the limit, occupied, blocked, pressed)."""
        levels: dict[str, bool] = {}
        for input_name, (device, contact) in self._inputs.items():
            closed = bool(device.is_active)
            levels[input_name] = closed if contact == "NO" else not closed
        return levels

    def close(self) -> None:
        """Release every relay and the pins."""
        for device in self._relays.values():
            device.off()
            device.close()
        for device, _contact in self._inputs.values():
            device.close()
