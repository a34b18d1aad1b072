"""Device profiles: register maps as data, validated once into typed objects, and the decoder they drive.

A profile says which register blocks to read and how each point is decoded from them. Profiles ship as TOML files
in `drivers/profiles/`; one file per device model.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.errors import ProfileError


class Quality(StrEnum):
    """How far a value can be trusted."""

    GOOD = "good"
    BAD = "bad"  # the device answered, but the value is out of range, marked invalid, or changing too fast to trust
    OFFLINE = "offline"  # the device did not answer
    UNKNOWN = "unknown"  # not read yet since start


Value = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class PointValue:
    """One decoded value; `value` is None unless quality is good or the map defines a 'none' marker."""

    value: Value
    quality: Quality


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Block(_Strict):
    """One read request: a run of registers or bits fetched in one transaction."""

    name: str
    function: Literal[1, 2, 3, 4]
    address: int = Field(ge=0, le=65535)
    count: int = Field(ge=1, le=125)


class Point(_Strict):
    """One named value decoded from a block.

    `type` is `u16`, `s16`, `bit` (bit `bit` of a register word), `di` (a coil or discrete input) or `enum`
    (a register whose codes are named by `states`). `event` names the event class a change of this point raises;
    `severity` is that event's severity, or for enums the severity when the new value is in `alarm_when`.
    `counts`: for a u16 change counter of the device's own (wrapping), the points whose changes it counts; a
    counter that moves by more than one between two polls tells of changes no poll saw.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")
    block: str
    offset: int = Field(ge=0)
    type: Literal["u16", "s16", "bit", "di", "enum"]
    bit: int | None = Field(default=None, ge=0, le=15)
    scale: float = 1.0
    unit: str = ""
    min: float | None = None
    max: float | None = None
    invalid: tuple[int, ...] = ()
    none_value: int | None = None
    states: dict[str, str] = Field(default_factory=dict)
    deadband: float = 0.0
    event: str | None = None
    severity: Literal["alarm", "warning", "info"] = "info"
    alarm_when: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check_kind(self) -> Point:
        if self.counts and self.type != "u16":
            raise ValueError(f"point {self.name}: 'counts' needs type 'u16' (a change counter)")
        if self.type == "bit" and self.bit is None:
            raise ValueError(f"point {self.name}: type 'bit' needs 'bit'")
        if self.type == "enum" and not self.states:
            raise ValueError(f"point {self.name}: type 'enum' needs 'states'")
        return self


class IdCheck(_Strict):
    """One register a scan reads to recognise a model, and what it must hold: `equals` a value (a map version),
    `one_of` some values (model codes known to speak the map), or lie within `min`..`max` (a count, a state code)."""

    function: Literal[1, 2, 3, 4]
    address: int = Field(ge=0, le=65535)
    equals: int | None = None
    one_of: tuple[int, ...] = ()
    min: int | None = None
    max: int | None = None
    what: str = ""  # the register's name in the map, for the scan's report

    @model_validator(mode="after")
    def _check_test(self) -> IdCheck:
        if self.equals is None and not self.one_of and self.min is None and self.max is None:
            where = f"FC{self.function:02d} {self.address}"
            raise ValueError(f"identify check at {where}: needs equals, one_of, min or max")
        return self

    def holds(self, value: int) -> bool:
        """Whether the register's value is what this model has there."""
        if self.equals is not None and value != self.equals:
            return False
        if self.one_of and value not in self.one_of:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def expected(self) -> str:
        """What the check wants, for a report: '0x0100', 'one of 0x2101', '1..8'."""
        if self.equals is not None:
            return f"{self.equals:#06x}"
        if self.one_of:
            return "one of " + ", ".join(f"{v:#06x}" for v in self.one_of)
        return f"{'' if self.min is None else self.min}..{'' if self.max is None else self.max}"


class Identify(_Strict):
    """How `campus-edge scan` recognises this model on a bus: every check holds and every block reads, and the
    poll interval it proposes for it. A profile without one is never proposed by a scan."""

    checks: tuple[IdCheck, ...] = Field(min_length=1)
    poll_interval_s: float = Field(gt=0, le=3600)


class Profile(_Strict):
    """A device model: what to read and how to decode it.

    `settings_blocks` and `settings_points` are the device's configuration (timeouts, what its hardware does on
    power loss): read on demand to check them against the site's configuration, never on every poll.
    """

    model: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    map_version: int | None = None
    map_version_point: str | None = None
    blocks: tuple[Block, ...]
    points: tuple[Point, ...]
    settings_blocks: tuple[Block, ...] = ()
    settings_points: tuple[Point, ...] = ()
    identify: Identify | None = None

    @model_validator(mode="after")
    def _check_refs(self) -> Profile:
        names = _check_points(self.blocks, self.points, set())
        _check_points(self.settings_blocks, self.settings_points, names)
        if self.map_version_point is not None and self.map_version_point not in names:
            raise ValueError(f"map_version_point {self.map_version_point!r} is not a point")
        polled = {p.name: p for p in self.points}
        for p in self.points:
            for counted in p.counts:
                if counted not in polled or counted == p.name:
                    raise ValueError(f"point {p.name}: counts {counted!r}, which is not another polled point")
                if polled[counted].severity == "alarm" or polled[counted].alarm_when:
                    # An unstable counter marks its points bad and holds their events back: never an alarm's.
                    raise ValueError(
                        f"point {p.name}: counts {counted!r}, an alarm point, whose events nothing holds back"
                    )
        return self

    def point(self, name: str) -> Point:
        """Return the point called `name`."""
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)


def _check_points(blocks: tuple[Block, ...], points: tuple[Point, ...], taken: set[str]) -> set[str]:
    """Every point names a block it fits in, once; returns the names (`taken`: names used already)."""
    by_name = {b.name: b for b in blocks}
    if len(by_name) != len(blocks):
        raise ValueError("block names must be unique")
    names = set(taken)
    for p in points:
        if p.name in names:
            raise ValueError(f"point {p.name} defined twice")
        names.add(p.name)
        block = by_name.get(p.block)
        if block is None:
            raise ValueError(f"point {p.name}: no block named {p.block!r}")
        if p.offset >= block.count:
            raise ValueError(f"point {p.name}: offset {p.offset} beyond block {block.name} ({block.count})")
        if (p.type == "di") != (block.function in (1, 2)):
            raise ValueError(f"point {p.name}: type {p.type} does not fit function {block.function}")
    return names


def decode_point(point: Point, raw: list[int]) -> PointValue:
    """Decode one point from the raw words (or 0/1 bits) of its block."""
    word = raw[point.offset]
    if point.type == "di":
        return PointValue(bool(word), Quality.GOOD)
    if point.type == "bit":
        assert point.bit is not None
        return PointValue(bool((word >> point.bit) & 1), Quality.GOOD)
    if word in point.invalid:
        return PointValue(None, Quality.BAD)
    if point.none_value is not None and word == point.none_value:
        return PointValue(None, Quality.GOOD)
    if point.type == "enum":
        name = point.states.get(str(word))
        if name is None:
            return PointValue(None, Quality.BAD)
        return PointValue(name, Quality.GOOD)
    number = word - 0x10000 if point.type == "s16" and word & 0x8000 else word
    value: float | int = number * point.scale if point.scale != 1.0 else number
    if isinstance(value, float):
        value = round(value, 6)
    if (point.min is not None and value < point.min) or (point.max is not None and value > point.max):
        return PointValue(None, Quality.BAD)
    return PointValue(value, Quality.GOOD)


def decode(profile: Profile, blocks: dict[str, list[int]], settings: bool = False) -> dict[str, PointValue]:
    """Decode every point of a profile (or its settings points) from the raw values of their blocks."""
    points = profile.settings_points if settings else profile.points
    return {p.name: decode_point(p, blocks[p.block]) for p in points}


def load_profile(source: Path | str) -> Profile:
    """Load a profile by model name (a file shipped in `drivers/profiles/`) or from a path."""
    if isinstance(source, Path) or "/" in source or source.endswith(".toml"):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from exc
        where = str(path)
    else:
        ref = resources.files("drivers") / "profiles" / f"{source}.toml"
        if not ref.is_file():
            raise ProfileError(f"no device profile named {source!r}")
        text = ref.read_text(encoding="utf-8")
        where = f"drivers/profiles/{source}.toml"
    try:
        return Profile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ProfileError(f"{where}: {loc}: {msg}" if loc else f"{where}: {msg}") from exc


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with campus-edge."""
    folder = resources.files("drivers") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
