"""What one table of the configuration cannot check alone: ids used twice, references between tables
(buses, devices, lanes, doors, command targets), profiles and GPIO pins."""

from __future__ import annotations

import re

from drivers.errors import ProfileError
from drivers.profile import load_profile, shipped_profiles
from gateway.base.i18n import N_, Message
from gateway.config.locate import Problems
from gateway.config.models import GUARD_KINDS, Config, ContactPin, FieldDoorConfig, GpioInputConfig, field_doors

_BCM_MAX = 27  # the GPIO numbers on a Raspberry Pi's 40-pin header
_PIN_NAME = re.compile(r"(GPIO|BCM|BOARD|WPI)\d{1,2}|J8:\d{1,2}")
_DRY_PINS = (
    "raise_relay", "lower_relay", "stop_relay", "warning_relay", "efo_relay", "limit_up", "limit_down", "loop_a",
    "loop_b", "photocell", "pressure_edge", "estop", "local_mode", "manual_release",
)  # fmt: skip


# What an id already belongs to, in "id 'x' is already used by a device".
_USES = {"device": N_("device"), "lane": N_("lane"), "input": N_("GPIO input"), "door": N_("field node door")}


def _cross_check(cfg: Config) -> Problems:
    """What one table cannot check alone: ids used twice, references to buses, devices, lanes and doors, pins."""
    problems: Problems = []
    buses = {b.id for b in cfg.buses}
    seen_ids: dict[str, str] = {}
    seen_bus_ids: set[str] = set()
    for i, b in enumerate(cfg.buses):
        if b.id in seen_bus_ids:
            problems.append((("buses", i, "id"), Message(N_("bus id {id!r} is used twice"), id=b.id)))
        seen_bus_ids.add(b.id)
    units: set[tuple[str, int]] = set()
    for i, d in enumerate(cfg.devices):
        if d.id in seen_ids:
            problems.append((("devices", i, "id"), _used_by(d.id, seen_ids)))
        seen_ids[d.id] = _USES["device"]
        if d.bus not in buses:
            no_bus = Message(N_("no bus {bus!r}; expected one of {known}"), bus=d.bus, known=sorted(buses))
            problems.append((("devices", i, "bus"), no_bus))
        if (d.bus, d.unit) in units:
            unit_used = Message(N_("unit {unit} is already used on bus {bus}"), unit=d.unit, bus=d.bus)
            problems.append((("devices", i, "unit"), unit_used))
        units.add((d.bus, d.unit))
        try:
            points = {p.name for p in load_profile(d.profile).points}
        except ProfileError as exc:
            problems.append((("devices", i, "profile"), _profile_problem(d.profile, exc)))
            points = set()
        loops: set[int] = set()
        for j, door in enumerate(d.doors):
            where = ("devices", i, "doors", j)
            if door.id in seen_ids:
                problems.append(((*where, "id"), _used_by(door.id, seen_ids)))
            seen_ids[door.id] = _USES["door"]
            if points and f"door{door.loop}_state" not in points:
                not_a_node = Message(N_("profile {profile!r} has no door loop {loop}"), profile=d.profile,
                                     loop=door.loop)  # fmt: skip
                problems.append(((*where, "loop"), not_a_node))
            if door.loop in loops:
                problems.append(((*where, "loop"), Message(N_("loop {loop} is used twice"), loop=door.loop)))
            loops.add(door.loop)
            problems += _door_settings_problems(cfg, where, door)
    profiles = {d.id: d.profile for d in cfg.devices}
    pins: dict[str, str] = {}
    for i, lane in enumerate(cfg.lanes):
        if lane.id in seen_ids:
            problems.append((("lanes", i, "id"), _used_by(lane.id, seen_ids)))
        seen_ids[lane.id] = _USES["lane"]
        if (lane.controller is None) == (lane.dry_contact is None):
            either = Message(N_("a lane needs either controller = a device id or a [dry_contact] table"))
            problems.append((("lanes", i, "id"), either))
            continue
        if lane.dry_contact is not None:
            dry = lane.dry_contact
            for key in _DRY_PINS:
                value = getattr(dry, key)
                if value is not None:
                    pin = value.pin if isinstance(value, ContactPin) else value
                    problems += _pin_problems(("lanes", i, "dry_contact", key), pin, pins, lane.id)
            continue
        if lane.controller is None or profiles.get(lane.controller) != "bollard_controller":
            known = sorted(k for k, v in profiles.items() if v == "bollard_controller")
            no_controller = Message(N_("no bollard_controller device {device!r}; expected one of {known}"),
                                    device=lane.controller, known=known)  # fmt: skip
            problems.append((("lanes", i, "controller"), no_controller))
        if lane.controller in [other.controller for other in cfg.lanes[:i]]:
            driven = Message(N_("controller {device!r} already drives a lane"), device=lane.controller)
            problems.append((("lanes", i, "controller"), driven))
    for i, g in enumerate(cfg.gpio.inputs):
        if g.id in seen_ids:
            problems.append((("gpio", "inputs", i, "id"), _used_by(g.id, seen_ids)))
        seen_ids[g.id] = _USES["input"]
        problems += _pin_problems(("gpio", "inputs", i, "pin"), g.pin, pins, g.id)
        lanes = {lane.id for lane in cfg.lanes}
        if g.kind in GUARD_KINDS and g.lane not in lanes:
            needs_lane = Message(N_("a {kind} input needs lane = one of {known}"), kind=g.kind, known=sorted(lanes))
            problems.append((("gpio", "inputs", i, "lane"), needs_lane))
        if g.kind not in GUARD_KINDS and g.lane is not None:
            problems.append((("gpio", "inputs", i, "lane"), Message(N_("a {kind} input has no lane"), kind=g.kind)))
        doors = sorted([d.id for d in cfg.gpio.inputs if d.kind == "door"] + [d.id for d in field_doors(cfg)])
        if g.kind == "rex" and g.door not in doors:
            needs_door = Message(N_("a rex input needs door = one of {known}"), known=doors)
            problems.append((("gpio", "inputs", i, "door"), needs_door))
        if g.kind != "rex" and g.door is not None:
            problems.append((("gpio", "inputs", i, "door"), Message(N_("a {kind} input has no door"), kind=g.kind)))
        if g.kind == "door":
            problems += _door_settings_problems(cfg, ("gpio", "inputs", i), g)
    if cfg.commands is not None:
        targets = {lane.id for lane in cfg.lanes} | {cfg.gateway.id}
        for i, command_key in enumerate(cfg.commands.keys):
            strangers = sorted(set(command_key.targets or ()) - targets)
            if strangers:
                no_target = Message(N_("no target {target!r}; expected of {known}"), target=strangers[0],
                                    known=sorted(targets))  # fmt: skip
                problems.append((("commands", "keys", i, "targets"), no_target))
    return problems


def _door_settings_problems(
    cfg: Config, where: tuple[str | int, ...], door: GpioInputConfig | FieldDoorConfig
) -> Problems:
    problems: Problems = []
    if door.armed == "schedule" and "armed" in door.model_fields_set and cfg.schedule is None:
        needs_schedule = Message(N_('armed = "schedule" needs a [schedule]; or "always"'))
        problems.append(((*where, "armed"), needs_schedule))
    if door.held_prewarn_s is not None and door.held_prewarn_s >= door.held_open_s:
        problems.append(((*where, "held_prewarn_s"), Message(N_("expected less than held_open_s"))))
    return problems


def _used_by(item: str, seen: dict[str, str]) -> Message:
    return Message(N_("id {id!r} is already used by a {what}"), id=item, what=Message(seen[item]))


def _profile_problem(name: str, exc: ProfileError) -> Message:
    """A profile name that is not shipped, said in the reader's language; a custom profile file's own error (its
    path, its key) is said as the profile loader says it."""
    if "/" not in name and not name.endswith(".toml") and name not in shipped_profiles():
        return Message(N_("no device profile named {name!r}"), name=name)
    return Message(N_("the profile cannot be used: {reason}"), reason=str(exc))


def _pin_key(pin: int | str) -> str:
    """One name per BCM pin: 17, "GPIO17" and "BCM17" are the same pin. (Header names, "BOARD11" or "J8:11",
    are compared as written.)"""
    text = str(pin)
    for prefix in ("GPIO", "BCM"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return str(int(text[len(prefix) :]))
    return text


def _pin_problems(where: tuple[str | int, ...], pin: int | str, used: dict[str, str], owner: str) -> Problems:
    """A GPIO pin that is not one, or is taken already (`used`: pin -> the use that took it, which gets this one);
    the message names both uses."""
    problems: Problems = []
    if isinstance(pin, int) and not 0 <= pin <= _BCM_MAX:
        problems.append((where, Message(N_("expected a BCM GPIO number 0..{max}, got {pin}"), max=_BCM_MAX, pin=pin)))
    elif isinstance(pin, str) and not _PIN_NAME.fullmatch(pin):
        problems.append((where, Message(N_("expected a pin like 17, 'GPIO17', 'BOARD11' or 'J8:11', got {pin!r}"),
                                        pin=pin)))  # fmt: skip
    key = _pin_key(pin)
    this = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
    this = f"{this.removesuffix('.pin')} ({owner})"
    if key in used:
        problems.append((where, Message(N_("pin {pin} is already used by {use}"), pin=pin, use=used[key])))
    else:
        used[key] = this
    return problems
