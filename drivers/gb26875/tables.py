"""The GB/T 26875.3 code tables, in English and zh-CN: system, component, analog and ADU types, commands, and the
meaning of status and operation bits. The tables are data (`drivers/gb26875/tables/*.toml`), read and checked
once; a later edition or a vendor's dialect is a changed file, not changed code.

A code a table does not list still has a name: "user-defined" in its user range, "reserved" elsewhere, so a
frame from a newer device is shown, never refused.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from drivers.errors import ProfileError

BitTable = Literal["system_status", "component_status", "transmitter_state", "panel_operation",
                   "transmitter_operation"]  # fmt: skip
BIT_TABLES: tuple[BitTable, ...] = ("system_status", "component_status", "transmitter_state", "panel_operation",
                                    "transmitter_operation")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Name:
    """A name in both languages of the gateway."""

    en: str
    zh: str

    def text(self, language: str) -> str:
        """The name in `language` ("zh-CN" or "en")."""
        return self.zh if language == "zh-CN" else self.en


@dataclass(frozen=True, slots=True)
class CodeTable:
    """Names of one byte's codes: `name()` answers for every code 0..255."""

    what: Name  # what the codes are: "component type"
    codes: dict[int, Name]
    user_defined: tuple[int, int]

    def name(self, code: int) -> Name:
        known = self.codes.get(code)
        if known is not None:
            return known
        low, high = self.user_defined
        if low <= code <= high:
            return Name(f"user-defined {self.what.en} {code}", f"用户自定义{self.what.zh} {code}")
        return Name(f"reserved {self.what.en} {code}", f"预留{self.what.zh} {code}")


@dataclass(frozen=True, slots=True)
class AnalogType:
    """What an analog value measures: a raw value times `resolution` is in `unit`, valid from `low` to `high`."""

    code: int
    name: Name
    unit: str
    resolution: float
    low: float | None
    high: float | None

    def value(self, raw: int) -> float:
        """The measured value in `unit` (573 at 0.1 °C is 57.3), rounded to the resolution's digits."""
        return round(raw * self.resolution, 6)


@dataclass(frozen=True, slots=True)
class AnalogTable:
    """The analog types by code, and the names of the codes it does not list."""

    names: CodeTable
    types: dict[int, AnalogType]

    def get(self, code: int) -> AnalogType:
        """The type `code`; a reserved or user-defined one has resolution 1 and no unit or range."""
        known = self.types.get(code)
        return known if known is not None else AnalogType(code, self.names.name(code), "", 1.0, None, None)


@dataclass(frozen=True, slots=True)
class Bit:
    """One bit of a status or operation word: its meaning when set, and when clear if that means something."""

    bit: int
    set: Name
    clear: Name | None


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a table's data come from, for error messages."""

    where: str
    data: dict[str, Any]


def _read(name: str, path: Path | None = None) -> _Source:
    if path is not None:
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{where}: cannot read table: {exc.strerror}") from exc
    else:
        where = f"drivers/gb26875/tables/{name}.toml"
        text = (resources.files("drivers") / "gb26875" / "tables" / f"{name}.toml").read_text(encoding="utf-8")
    try:
        return _Source(where, tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: {exc}") from exc


def _name(source: _Source, key: str, value: object) -> Name:
    if not isinstance(value, dict) or not isinstance(value.get("en"), str) or not isinstance(value.get("zh"), str):
        raise ProfileError(f"{source.where}: {key}: expected a table with text 'en' and 'zh'")
    if not value["en"] or not value["zh"]:
        raise ProfileError(f"{source.where}: {key}: expected non-empty 'en' and 'zh'")
    return Name(value["en"], value["zh"])


def _code(source: _Source, key: str, text: str, high: int) -> int:
    if not text.isdigit() or not 0 <= int(text) <= high:
        raise ProfileError(f"{source.where}: {key}: expected a code 0..{high}, found {text!r}")
    return int(text)


def _codes(source: _Source) -> dict[str, Any]:
    codes = source.data.get("codes")
    if not isinstance(codes, dict) or not codes:
        raise ProfileError(f"{source.where}: codes: expected a table of codes")
    return codes


def _user_range(source: _Source) -> tuple[int, int]:
    value = source.data.get("user_defined")
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)
            and 0 <= value[0] <= value[1] <= 255):  # fmt: skip
        raise ProfileError(f"{source.where}: user_defined: expected [first, last] codes within 0..255")
    return value[0], value[1]


def load_code_table(name: str, path: Path | None = None) -> CodeTable:
    """The table `name` shipped in drivers/gb26875/tables/ (or read from `path`); ProfileError names the key."""
    source = _read(name, path)
    what = _name(source, "what", source.data.get("what"))
    codes = {_code(source, f"codes.{k}", k, 255): _name(source, f"codes.{k}", v) for k, v in _codes(source).items()}
    return CodeTable(what, codes, _user_range(source))


def load_analog_types(path: Path | None = None) -> AnalogTable:
    """The analog types; ProfileError names the file and the key."""
    source = _read("analog_types", path)
    what = _name(source, "what", source.data.get("what"))
    out = {}
    for key, value in _codes(source).items():
        where = f"codes.{key}"
        code = _code(source, where, key, 255)
        name = _name(source, where, value)
        unit, resolution = value.get("unit"), value.get("resolution")
        if not isinstance(unit, str):
            raise ProfileError(f"{source.where}: {where}: expected text 'unit' ('' for a count)")
        if not isinstance(resolution, int | float) or isinstance(resolution, bool) or resolution <= 0:
            raise ProfileError(f"{source.where}: {where}: expected a positive number 'resolution'")
        low, high = value.get("min"), value.get("max")
        for bound, label in ((low, "min"), (high, "max")):
            if bound is not None and (not isinstance(bound, int | float) or isinstance(bound, bool)):
                raise ProfileError(f"{source.where}: {where}: expected a number '{label}'")
        out[code] = AnalogType(code, name, unit, float(resolution), low, high)
    return AnalogTable(CodeTable(what, {c: t.name for c, t in out.items()}, _user_range(source)), out)


def load_bits(path: Path | None = None) -> dict[BitTable, tuple[Bit, ...]]:
    """The bit tables by name; ProfileError names the file and the key."""
    source = _read("status_bits", path)
    out: dict[BitTable, tuple[Bit, ...]] = {}
    for table in BIT_TABLES:
        entries = source.data.get(table)
        if not isinstance(entries, dict):
            raise ProfileError(f"{source.where}: {table}: expected a table of bits")
        bits = []
        for key, value in entries.items():
            where = f"{table}.{key}"
            bit = _code(source, where, key, 15)
            clear = value.get("clear") if isinstance(value, dict) else None
            bits.append(Bit(bit, _name(source, where, value), None if clear is None else
                            _name(source, f"{where}.clear", clear)))  # fmt: skip
        out[table] = tuple(sorted(bits, key=lambda b: b.bit))
    return out


@functools.cache
def system_types() -> CodeTable:
    return load_code_table("system_types")


@functools.cache
def component_types() -> CodeTable:
    return load_code_table("component_types")


@functools.cache
def adu_types() -> CodeTable:
    return load_code_table("adu_types")


@functools.cache
def commands() -> CodeTable:
    return load_code_table("commands")


@functools.cache
def analog_types() -> AnalogTable:
    return load_analog_types()


@functools.cache
def bit_tables() -> dict[BitTable, tuple[Bit, ...]]:
    return load_bits()


def analog_type(code: int) -> AnalogType:
    """The analog type `code`; a reserved or user-defined one has resolution 1 and no unit or range."""
    return analog_types().get(code)


def set_bits(table: BitTable, word: int) -> tuple[Name, ...]:
    """What a status or operation word says: the name of each set bit, and of each clear bit whose 0 means
    something (bit 0 clear: "test"), in bit order. A set bit the table does not list is named as reserved."""
    out = []
    bits = {b.bit: b for b in bit_tables()[table]}
    for position in range(16):
        entry = bits.get(position)
        if word >> position & 1:
            out.append(entry.set if entry else Name(f"reserved bit {position}", f"预留位 {position}"))
        elif entry is not None and entry.clear is not None:
            out.append(entry.clear)
    return tuple(out)
