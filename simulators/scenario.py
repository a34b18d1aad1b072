"""Scenarios: timed changes to a simulated site, from a TOML file or built in code.

```toml
[[step]]
at_s = 2.0              # seconds from the start of the scenario
target = "door-main"    # a simulated device or contact id
action = "open"         # what happens; see ACTIONS
value = 2.5             # for actions that take one
```

The faults a bollard controller simulator must be able to inject (devices.md 3.7) and the steps that inject them,
on a bollard controller target unless said otherwise:

1. Vehicle on the loop before or during a rise: `input` "loop_a_occupied=true" (or loop_b).
2. Person on the head during a rise: `input` "pressure_edge_active=true".
3. Loop detector stuck occupied: `input` "loop_a_occupied=true", never cleared; its fault output:
   `fault` "trip=loop_detector_fault"; stuck free: no loop step while the vehicle is there (only another sensor,
   e.g. `input` "photocell_blocked=true", sees it).
4. Photocell blocked, or failed (a dirty lens reads blocked): `input` "photocell_blocked=true"; its self-test
   fault: `fault` "trip=photocell_fault".
5. Limit switch stuck open: `fault` "limit_up_stuck_open=true" or "limit_down_stuck_open=true"; stuck closed
   (both limits active): `fault` "both_limits=true"; bouncing: "limit_up_stuck_open=true" then "=false".
6. Slow motion: `fault` "slow_factor=2" (within the 8 s rise timeout) or "slow_factor=3" (beyond it).
7. Motor overcurrent: `fault` "overcurrent_on_motion=true"; thermal trip, hydraulic pressure low, oil level low:
   `fault` "trip=motor_thermal", "trip=hydraulic_pressure_low", "trip=oil_level_low".
8. Drift down while UP: `fault` "drift_down_pct_per_s=2".
9. Mains loss: `power_loss` "stay" or "lower" (the hardware's behaviour), then `power_off` (and `power_on`); with a
   UPS: `input` "mains_ok=false" and "ups_on_battery=true"; a brown-out shorter than the ride-through: `input`
   "mains_ok=false", then "mains_ok=true".
10. Manual release or hand-pump lowering: `input` "manual_release_engaged=true".
11. E-stop mid-motion: `input` "estop_pressed=true"; key switch to LOCAL: `input` "local_mode=true".
12. Controller reboot mid-motion: `power_off`, then `power_on` (UNKNOWN until a limit switch is seen).
13. Modbus-level, on any simulated device: `modbus_fault` "silent=true" (no response), "stall_s=1.5" (late
    response), "drop_next_replies=5", "corrupt_next_crc=3" (RTU buses only), "exception_next=4" or "=6",
    "wrong_unit_next=2" and "truncate_next=2", "frozen=true" (answers, but with the values it
    had: an I/O board dead, the event counter frozen).
14. Commands in bursts, duplicates, raise and lower in one poll cycle: several `guard_raise`, `guard_lower`,
    `guard_stop` steps with the same `at_s` (on a lane, where a gateway runs with the site, as in the demo).
15. Traffic light or buzzer output failure (lamp current 0): `fault` "lamps_failed=0b1111" (bits of input
    register 14: 0b0001 red, 0b0010 green/yellow, 0b0100 flasher, 0b1000 buzzer).

Values of `fault`, `modbus_fault`, `power_loss` and `efo_key` are checked when the file is parsed, so that a typo
stops the scenario before it starts rather than halfway through.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from simulators.bollard import MotionFaults
from simulators.devices import Faults, ModbusExceptionCode

ACTIONS = {
    "open": "a door opens (contact becomes active)",
    "close": "a door closes",
    "activate": "a contact becomes active (e.g. a trouble relay drops out)",
    "deactivate": "a contact returns to normal",
    "smoke": "a smoke detector's obscuration becomes `value` %/m",
    "reset": "a detector or panel is reset",
    "alarm_point": "a fire panel reports fire at point `value`",
    "clear_point": "the condition at panel point `value` goes away (fire stays latched until reset)",
    "state": "a bollard controller moves to state `value` (down, rising, up, lowering, fault, ...)",
    "position": "a bollard controller reports position `value` %",
    "flag": 'a smoke detector\'s status flag changes: `value` = "low_battery=true" (dirty_chamber, tamper, ...)',
    "report": "the gateway writes its daily hazard-check report now (target: the gateway id; the demo)",
    "silent": "a Modbus device stops answering (`value` true) or answers again (false)",
    "input": 'a bollard controller\'s field input changes: `value` = "loop_a_occupied=true" (loops, photocell, ...)',
    "guard_raise": "the guard presses RAISE for the lane `target` (as the gate-house button does)",
    "guard_lower": "the guard presses LOWER for the lane `target`",
    "guard_stop": "the guard presses STOP for the lane `target`",
    "fault": 'a bollard controller fault: `value` = "FIELD=VALUE" of simulators.bollard.MotionFaults, e.g.'
    ' "slow_factor=3", "both_limits=true", "trip=motor_thermal", "lamps_failed=0b0001"',
    "modbus_fault": 'a Modbus-level fault of any device: `value` = "FIELD=VALUE" of simulators.devices.Faults,'
    ' e.g. "silent=true", "stall_s=1.5", "drop_next_replies=5", "exception_next=6"',
    "power_loss": 'what a bollard controller\'s hardware does without power: `value` = "stay" or "lower"'
    " (holding register 107)",
    "power_off": "a bollard controller loses mains and UPS: it stops answering; the hydraulics do what the hardware"
    " does",
    "power_on": "a bollard controller's power returns: state UNKNOWN until a limit switch is seen",
    "efo_key": "the local key switch that allows a remote EFO on a bollard controller: `value` = true or false",
    "loop": 'a door node\'s loop changes: `value` = "DOOR=STATE", e.g. "2=open", "1=normal", "3=short", "1=cut"',
    "reset_fault": "a technician presses the fault reset at a bollard controller (refused while the cause remains)",
}


class ScenarioError(ValueError):
    """A scenario file is malformed."""


@dataclass(frozen=True, slots=True)
class Step:
    """One change at one time."""

    at_s: float
    target: str
    action: str
    value: float | int | str | bool | None = None
    note: str = ""


Setting = bool | int | float | IntEnum | None


def _bad(step: Step, what: str) -> ScenarioError:
    return ScenarioError(f"step at {step.at_s:g} s: {step.target!r} {step.action}: {what}")


def _setting(step: Step, knobs: type) -> tuple[str, Setting]:
    """`value = "FIELD=VALUE"`: a field of the dataclass `knobs` and its value, converted to the field's type."""
    hints = typing.get_type_hints(knobs)
    text = step.value if isinstance(step.value, str) else ""
    name, sep, raw = text.partition("=")
    if not sep:
        raise _bad(step, f'expected value = "FIELD=VALUE", got {step.value!r}')
    if name not in hints:
        raise _bad(step, f"no field {name!r}; expected one of {', '.join(sorted(hints))}")
    kind = hints[name]
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if raw == "none":
            return name, None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    value = _convert(raw, kind)
    if value is None or not _ALLOWED.get(name, _non_negative)(value):
        expected = _EXPECTED.get(name) or _KINDS.get(kind) or "one of " + ", ".join(m.name.lower() for m in kind)
        raise _bad(step, f"{name}: expected {expected}{' or none' if optional else ''}, got {raw!r}")
    return name, value


def _convert(raw: str, kind: object) -> Setting:
    """A field's text as its type, or None when it is not one."""
    try:
        if kind is bool:
            return {"true": True, "false": False}.get(raw)
        if kind is int:
            return int(raw, 0)
        if kind is float:
            number = float(raw)
            return number if math.isfinite(number) else None
        if isinstance(kind, type) and issubclass(kind, IntEnum):
            return kind[raw.upper()]
    except (ValueError, KeyError):
        return None
    return None


def _non_negative(value: Setting) -> bool:
    return not isinstance(value, int | float) or value >= 0


_KINDS: dict[object, str] = {bool: "true or false", int: "an integer >= 0", float: "a number >= 0"}
# Fields whose values are narrower than their type.
_EXPECTED = {
    "slow_factor": "a factor > 0 (1 normal, 2 twice as slow)",
    "lamps_failed": "a mask of input register 14 bits, 0 to 0b1111",
    "exception_next": "an exception code (" + ", ".join(str(int(c)) for c in ModbusExceptionCode) + ")",
}
_ALLOWED: dict[str, Callable[[Setting], bool]] = {
    "slow_factor": lambda v: isinstance(v, float) and v > 0,
    "lamps_failed": lambda v: isinstance(v, int) and 0 <= v <= 0b1111,
    "exception_next": lambda v: v in set(ModbusExceptionCode),
}


def fault_setting(step: Step) -> tuple[str, Setting]:
    """A `fault` step's field of MotionFaults and its value."""
    return _setting(step, MotionFaults)


def modbus_fault_setting(step: Step) -> tuple[str, Setting]:
    """A `modbus_fault` step's field of Faults and its value."""
    return _setting(step, Faults)


def power_loss_behaviour(step: Step) -> int:
    """A `power_loss` step's value as holding register 107: 0 stay, 1 lower."""
    if step.value not in ("stay", "lower"):
        raise _bad(step, f'expected value = "stay" or "lower", got {step.value!r}')
    return int(step.value == "lower")


def flag(step: Step) -> bool:
    """An `efo_key` step's value: a TOML boolean."""
    if not isinstance(step.value, bool):
        raise _bad(step, f"expected value = true or false, got {step.value!r}")
    return step.value


def no_value(step: Step) -> None:
    """Actions that take no value refuse one, rather than leave it unused."""
    if step.value is not None:
        raise _bad(step, f"takes no value, got {step.value!r}")


# Actions whose value is checked when a file is parsed (and again when the step is applied), and the check.
VALUES: dict[str, Callable[[Step], object]] = {
    "fault": fault_setting,
    "modbus_fault": modbus_fault_setting,
    "power_loss": power_loss_behaviour,
    "efo_key": flag,
    "power_off": no_value,
    "power_on": no_value,
    "reset_fault": no_value,
}


def parse_scenario(text: str, source: str = "<scenario>") -> list[Step]:
    """Parse scenario TOML into steps sorted by time."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"step", "description"}
    if unknown:
        raise ScenarioError(f"{source}: unknown key {sorted(unknown)[0]!r}; expected [[step]] tables")
    steps = []
    for i, raw in enumerate(data.get("step", [])):
        where = f"{source}: step[{i}]"
        extra = set(raw) - {"at_s", "target", "action", "value", "note"}
        if extra:
            raise ScenarioError(f"{where}: unknown key {sorted(extra)[0]!r}")
        for key in ("at_s", "target", "action"):
            if key not in raw:
                raise ScenarioError(f"{where}: {key}: required key is missing")
        if not isinstance(raw["at_s"], int | float) or raw["at_s"] < 0:
            raise ScenarioError(f"{where}: at_s: expected a number of seconds >= 0")
        if raw["action"] not in ACTIONS:
            raise ScenarioError(f"{where}: action: {raw['action']!r} is not one of {sorted(ACTIONS)}")
        step = Step(float(raw["at_s"]), str(raw["target"]), raw["action"], raw.get("value"), raw.get("note", ""))
        check = VALUES.get(step.action)
        if check is not None:
            try:
                check(step)
            except ScenarioError as exc:
                raise ScenarioError(f"{source}: {exc}") from None
        steps.append(step)
    return sorted(steps, key=lambda s: s.at_s)


def load_scenario(path: Path) -> list[Step]:
    """Read and parse a scenario file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_scenario(text, str(path))
