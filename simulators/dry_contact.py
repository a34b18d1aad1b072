"""A dry-contact bollard controller on simulated GPIO pins: the same controller model as the Modbus one
(`BollardSim`), but commanded through its terminals and seen only through its contacts.

The gateway's relays drive GPIO output pins; the rig watches those pins and closes the controller's terminals on
each rising edge. The controller's limit switches and safety devices drive the gateway's input pins. Such a
controller gives no pre-warning of its own (holding register 102 is set to 0): the gateway must (R13), and the rig
records, for every raise, how long the warning output had been on when the raise terminal closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from simulators.bollard import BollardSim, Source

_TERMINALS = {"raise": "cmd_raise", "lower": "cmd_lower", "stop": "cmd_stop", "efo": "cmd_efo"}


class DryContactRig:
    """Connects a `BollardSim` to mock GPIO pins. Call `step()` as often as the gateway samples (or more)."""

    def __init__(
        self,
        sim: BollardSim,
        pin_factory: Any,
        relays: Mapping[str, int | str],
        inputs: Mapping[str, tuple[int | str, Literal["NC", "NO"]]],
        active_high: bool = True,
    ) -> None:
        self.sim = sim
        self.sim.holding[102] = 0  # no pre-warning of its own
        self._relay_pins = {name: pin_factory.pin(pin) for name, pin in relays.items()}
        self._input_pins = {name: (pin_factory.pin(pin), contact) for name, (pin, contact) in inputs.items()}
        self._active_high = active_high
        self._was_on = dict.fromkeys(relays, False)
        self._warning_since: float | None = None
        self.raise_warnings: list[float | None] = []  # per raise: seconds of warning before it (None: none)
        self.terminals: list[tuple[float, str]] = []  # (time, terminal) as the controller saw them close
        self.write_inputs()

    def relay_on(self, name: str) -> bool:
        """Whether the gateway's relay `name` is energised."""
        return bool(self._relay_pins[name].state) == self._active_high

    def step(self) -> None:
        """Close terminals on new relay edges, move the controller, and drive its contacts."""
        now = self.sim.clock()
        if "warning" in self._relay_pins:
            on = self.relay_on("warning")
            if on and self._warning_since is None:
                self._warning_since = now
            elif not on:
                self._warning_since = None
        for name, command in _TERMINALS.items():
            if name not in self._relay_pins:
                continue
            on = self.relay_on(name)
            if on and not self._was_on[name]:
                self.terminals.append((now, name))
                if name == "raise":
                    self.raise_warnings.append(None if self._warning_since is None else now - self._warning_since)
                self.sim.command(command, Source.EFO if name == "efo" else Source.LOCAL_BUTTON)
            self._was_on[name] = on
        self.sim.tick()
        self.write_inputs()

    def write_inputs(self) -> None:
        """Drive each wired contact from the controller's field inputs (pull-up: a closed contact reads low)."""
        for name, (pin, contact) in self._input_pins.items():
            active = self.sim.inputs[name]
            closed = active if contact == "NO" else not active
            if closed:
                pin.drive_low()
            else:
                pin.drive_high()
