"""JSON read strictly: one document, one meaning.

Python's json module and pydantic's parser keep the last of a key given twice, other parsers the first, so a
signed command with two "action"s could be read one way by the gateway and another by whoever checked it. RFC 8259
leaves repeated names undefined; I-JSON (RFC 7493) forbids them and lone surrogates. Every JSON the gateway takes
in from outside, and every state file it reads back, goes through `loads`, which refuses both at any depth.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NAME = re.compile(r"[A-Za-z0-9_-]+")


class StrictJSONError(ValueError):
    """Well-formed JSON that still cannot be read one way only; `path` names the place (`body.params`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class DuplicateKeyError(StrictJSONError):
    """An object with the same key twice."""

    def __init__(self, key: str, path: str) -> None:
        super().__init__(path, f"duplicate key {_quote(key)} in {path}")
        self.key = key


class _Repeated(dict[str, Any]):
    """An object whose `key` came twice: kept in the tree until its path is known, then refused."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


def loads(data: str | bytes | bytearray, what: str = "document") -> Any:
    """Parse JSON (bytes as UTF-8 only) as json.loads does, but refuse a repeated key in any object and a string
    that is not Unicode. `what` names the top level in the messages ('duplicate key "seq" in ack').

    Raises:
        StrictJSONError: a repeated key (DuplicateKeyError), a lone surrogate, or nesting too deep.
        ValueError: anything else that is not JSON (json.JSONDecodeError, UnicodeDecodeError), as json.loads.
    """
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    try:
        value = json.loads(text, object_pairs_hook=_pairs)
    except RecursionError:
        raise StrictJSONError(what, f"{what}: nested too deeply") from None
    _check(value, what)
    return value


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            return _Repeated(pairs, key)
        seen.add(key)
    return dict(pairs)


def _check(value: Any, what: str) -> None:
    """Walk the tree (without recursion: it may be as deep as json allowed) for the first object with a repeated
    key or string with a lone surrogate, in document order."""
    stack: list[tuple[Any, str]] = [(value, what)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Repeated):
            raise DuplicateKeyError(node.key, path)
        if isinstance(node, str):
            _unicode(node, path)
        elif isinstance(node, dict):
            for key in node:
                _unicode(key, path)
            stack.extend((v, _child(path, k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))


def _unicode(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError(path, f"{path}: a string with a lone surrogate (not Unicode)") from None


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _NAME.fullmatch(key) else f"{path}[{_quote(key)}]"


def _quote(key: str) -> str:
    """The key as JSON writes it; escaped only where it could not be printed."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(key)
    return json.dumps(key, ensure_ascii=False)
