"""The campus-edge RP2040 door node (firmware/), register map v1.0 (docs/firmware.md section 4), as a simulator.

The firmware itself runs in tests over a pseudo-terminal; this model stands in for a node on a simulated site and in
gateway tests, where what matters is what the node reports: each loop normal, open, short, cut or unused, the
changes it counted, and its loop levels. A change between two polls is seen by the gateway only through the
counters, as on the real line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from simulators.devices import ModbusExceptionCode, SimDevice

LoopState = Literal["unused", "normal", "open", "short", "cut"]
STATE_CODES: dict[str, int] = {"unused": 0, "normal": 1, "open": 2, "short": 3, "cut": 4}
# The loop level each state reads at with the documented 4.7 kOhm resistors, 0.01 % of full scale.
LEVELS: dict[str, int] = {"unused": 0, "normal": 5000, "open": 6667, "short": 0, "cut": 10000}
MODEL_CODE = 0x4401
MAP_VERSION = 0x0100
FW_VERSION = 0x0100
LOOPS = 4


class DoorNodeSim(SimDevice):
    """A door node with `points` wired loops (1-4), all shut at start."""

    model = "door_node"

    def __init__(self, points: int = 3, unit: int = 247, baud: int = 19200) -> None:
        super().__init__()
        if not 1 <= points <= LOOPS:
            raise ValueError(f"door node: points {points}: expected 1-{LOOPS}")
        self.points = points
        self.settings = {"unit": unit, "baud": baud, "debounce_ms": 50}
        self.loops: list[LoopState] = ["normal" if n < points else "unused" for n in range(LOOPS)]
        self.changes = [0] * LOOPS
        self.event_counter = 0
        self.config_fault = False
        self.watchdog_restart = False
        self.board_temperature = 31.5
        self._started = time.monotonic()

    def set_loop(self, door: int, state: LoopState) -> None:
        """Door `door` (1-based) now reads `state`; each change is counted as the firmware counts it."""
        if not 1 <= door <= self.points:
            raise ValueError(f"door node: door {door}: this node has doors 1-{self.points}")
        if state not in STATE_CODES or state == "unused":
            raise ValueError(f"door node: door {door}: state {state!r}: expected normal, open, short or cut")
        if self.loops[door - 1] != state:
            self.loops[door - 1] = state
            self.changes[door - 1] = (self.changes[door - 1] + 1) & 0xFFFF
            self.event_counter = (self.event_counter + 1) & 0xFFFF

    def open_door(self, door: int, is_open: bool = True) -> None:
        self.set_loop(door, "open" if is_open else "normal")

    def write(self, function: int, address: int, values: Sequence[int]) -> ModbusExceptionCode | None:
        return ModbusExceptionCode.ILLEGAL_FUNCTION  # the node takes no writes: settings live in its config.json

    def table(self, function: int) -> dict[int, int]:
        tamper = [state in ("short", "cut") for state in self.loops]
        if function == 2:
            bits = [state == "open" for state in self.loops] + tamper + [any(tamper), self.config_fault]
            return {a: int(b) for a, b in enumerate(bits)}
        if function == 3:
            words = [self.settings["unit"], self.settings["baud"] // 100, self.settings["debounce_ms"],
                     2500, 5830, 8330, 150, self.points]  # fmt: skip
            return {100 + i: w for i, w in enumerate(words)}
        if function == 4:
            status = (
                int(any(state == "open" for state in self.loops))
                | int(any(tamper)) << 1
                | int(self.config_fault) << 2
                | int(self.watchdog_restart) << 3
            )
            words = [MODEL_CODE, MAP_VERSION, FW_VERSION, self.points, status, self.event_counter,
                     int((time.monotonic() - self._started) // 60) & 0xFFFF,
                     round(self.board_temperature * 10) & 0xFFFF, self.requests & 0xFFFF, 0,
                     0, 0, 0, 0, 0, 0]  # fmt: skip
            words += [STATE_CODES[state] for state in self.loops]
            words += self.changes
            words += [LEVELS[state] for state in self.loops]
            return dict(enumerate(words))
        return {}
