"""Where an error stands in the configuration file, and what was expected there, in the installer's words."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from gateway.base.errors import ConfigError
from gateway.base.i18n import N_, Message, MessageError
from gateway.config.models import _toml_type

Problems = list[tuple[tuple[str | int, ...], Message]]


def _line_map(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths (as pydantic reports them) to the line that defines them, for error messages."""
    lines: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str | int, ...], int] = {}
    current: tuple[str | int, ...] = ()
    header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    key = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            parts: tuple[str | int, ...] = ()
            for name in m.group(2).split("."):
                if parts in counters:
                    parts = (*parts, counters[parts])  # a table inside the latest entry of an array of tables
                parts = (*parts, name)
            if m.group(1) == "[[":
                index = counters.get(parts, -1) + 1
                counters[parts] = index
                current = (*parts, index)
            else:
                current = parts
            lines.setdefault(current, number)
            continue
        m = key.match(line)
        if m:
            lines.setdefault((*current, m.group(1)), number)
    return lines


def _written(data: object, loc: tuple[str | int, ...], kind: str) -> tuple[str | int, ...]:
    """pydantic's location of an error as the keys and indexes the file has: unions add the member they tried
    (a bus's "rtu", a pin's "int" or "ContactPin"), a dict its "[key]"; a missing key is the one that is not."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        children = node if isinstance(node, dict) else dict(enumerate(node)) if isinstance(node, list) else {}
        if part in children:
            node = children[part]
        elif not (kind == "missing" and i == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _tried(data: object, loc: tuple[str | int, ...], kind: str) -> list[tuple[tuple[str | int, ...], str | int]]:
    """The union members (and a dict's "[key]") an error's location passes through, each with the written path at
    which it stands: what `_written` leaves out (a missing key is no member)."""
    tried: list[tuple[tuple[str | int, ...], str | int]] = []
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        children = node if isinstance(node, dict) else dict(enumerate(node)) if isinstance(node, list) else {}
        if part in children:
            node = children[part]
            path.append(part)
        elif not (kind == "missing" and i == len(loc) - 1):
            tried.append((tuple(path), part))
    return tried


def _schema_problems(data: dict[str, Any], exc: ValidationError) -> Problems:
    """Every error pydantic found, at the keys the file has. Of a union's members, only the first one pydantic
    tried at a place speaks (a contact written as a table is said wrong as a table, not also as a pin number and
    as a pin name); a list too short only for the items that failed (pydantic counts the valid ones) is not said."""
    errors = exc.errors()
    inside = {tuple(err["loc"])[:n] for err in errors for n in range(len(err["loc"]))}
    problems: Problems = []
    speaks: dict[tuple[str | int, ...], str | int] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and loc in inside:
            continue
        if any(speaks.setdefault(at, member) != member for at, member in _tried(data, loc, err["type"])):
            continue
        path = _written(data, loc, err["type"])
        if err["type"] == "union_tag_invalid":  # pydantic names the table; the installer wrote the wrong tag
            path = (*path, str(err["ctx"]["discriminator"]).strip("'"))
        problems.append((path, _expected(err)))
    return problems


def _config_error(source: str, lines: dict[tuple[str | int, ...], int], problems: Problems) -> ConfigError:
    """One error for all the problems of a file, in the order of its lines (those of no line first: the file's
    own), each at its line and key."""
    located = [(*_where(lines, path), message) for path, message in problems]
    located.sort(key=lambda one: one[0] or 0)
    (line, key, message), *more = located
    return ConfigError(source, line, key, message, more)


def _where(lines: dict[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> tuple[int | None, str]:
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]], key
    return None, key


# pydantic's error types an installer meets, as catalogue templates filled from the error's context (limits,
# pattern, choices). Where pydantic's English names a TOML thing well it is kept word for word; where it names a
# Python one (tuple, dictionary, a model class) the TOML word replaces it.
_PYDANTIC: dict[str, str] = {
    "missing": N_("required key is missing"),
    "extra_forbidden": N_("unknown key"),
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "literal_error": N_("Input should be {expected}"),
    "too_short": N_("Input should have at least {min_length} item(s), not {actual_length}"),
    "too_long": N_("Input should have at most {max_length} item(s), not {actual_length}"),
    "union_tag_invalid": N_("Input should be one of {expected_tags}, not {tag!r}"),
    "union_tag_not_found": N_("required key {discriminator} is missing"),
}
# Strict types (no string is a number, no integer a boolean): these errors say what was written instead.
_TYPES: dict[str, str] = {
    "int_type": N_("Input should be a valid integer"),
    "float_type": N_("Input should be a valid number"),
    "string_type": N_("Input should be a valid string"),
    "bool_type": N_("Input should be a valid boolean"),
    "tuple_type": N_("Input should be a list"),
    "list_type": N_("Input should be a list"),
    "dict_type": N_("Input should be a table"),
    "model_type": N_("Input should be a table"),
    "model_attributes_type": N_("Input should be a table"),
    "date_type": N_("Input should be a valid date (YYYY-MM-DD)"),
    "path_type": N_("Input should be a valid path"),
}


def _one_of(choices: str) -> Message:
    """pydantic's list of a Literal's values (`'a', 'b' or 'c'`), its "or" in the reader's language."""
    items = re.split(r", | or ", choices)
    if len(items) == 1:
        return Message.untranslated(choices)
    return Message(N_("{choices} or {last}"), choices=", ".join(items[:-1]), last=items[-1])


def _expected(err: Any) -> Message:
    """What pydantic found wrong, as a Message: ours when a validator raised one, a catalogue template for the
    common error types, pydantic's English for the rest."""
    kind = err["type"]
    ctx = dict(err.get("ctx") or {})
    error = ctx.get("error")
    if isinstance(error, MessageError):
        return error.message
    if kind in _TYPES:
        return Message(N_("{expected}, not {given}"), expected=Message(_TYPES[kind]), given=_toml_type(err["input"]))
    if kind in _PYDANTIC:
        # A float limit pydantic says as an integer (gt=0 on a float: "greater than 0"); say it the same way.
        ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
        if kind == "literal_error":
            ctx["expected"] = _one_of(str(ctx["expected"]))
        try:
            _PYDANTIC[kind].format(**ctx)
        except (KeyError, IndexError):  # a context pydantic shapes differently in some version: say it its way
            pass
        else:
            return Message(_PYDANTIC[kind], **ctx)
    return Message.untranslated(str(err["msg"]).removeprefix("Value error, "))
