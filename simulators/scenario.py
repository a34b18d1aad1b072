"""Scenarios: timed changes to a simulated site, from a TOML file or built in code.

```toml
[[step]]
at_s = 2.0              # seconds from the start of the scenario
target = "door-main"    # a simulated device or contact id
action = "open"         # what happens; see ACTIONS
value = 2.5             # for actions that take one
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

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
    "silent": "a Modbus device stops answering (`value` true) or answers again (false)",
    "input": 'a bollard controller\'s field input changes: `value` = "loop_a_occupied=true" (loops, photocell, ...)',
    "guard_raise": "the guard presses RAISE for the lane `target` (as the gate-house button does)",
    "guard_lower": "the guard presses LOWER for the lane `target`",
    "guard_stop": "the guard presses STOP for the lane `target`",
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
        steps.append(Step(float(raw["at_s"]), str(raw["target"]), raw["action"], raw.get("value"), raw.get("note", "")))
    return sorted(steps, key=lambda s: s.at_s)


def load_scenario(path: Path) -> list[Step]:
    """Read and parse a scenario file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_scenario(text, str(path))
