"""Strict JSON: a key given twice, at any depth, is refused with its path; everything else reads as json.loads."""

from __future__ import annotations

import json

import pytest

from gateway.base import strict_json
from gateway.base.strict_json import DuplicateKeyError, StrictJSONError


def test_strict_json_reads_what_json_reads() -> None:
    """Well-formed JSON, also nested and with surrogate pairs, comes back as json.loads gives it."""
    text = '{"a": [1, {"b": null}], "c": {"d": "\\ud83d\\ude00 门"}, "e": 1.5}'
    assert strict_json.loads(text) == json.loads(text)
    assert strict_json.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"seq": 1, "seq": 2}', 'duplicate key "seq" in ack'),
        ('{"a": {"b": {"c": 1, "c": 1}}}', 'duplicate key "c" in ack.a.b'),
        ('{"readings": [{"v": 1}, {"v": 1, "v": 2}]}', 'duplicate key "v" in ack.readings[1]'),
        ('[[], {"x": {"门": 1, "门": 2}}]', 'duplicate key "门" in ack[1].x'),
        ('{"a b": {"k": 1, "k": 2}}', 'duplicate key "k" in ack["a b"]'),
        ('{"a": {"k": 1, "k": 2}, "a": 3}', 'duplicate key "a" in ack'),
    ],
)
def test_strict_json_a_repeated_key_is_refused_with_its_path(text: str, message: str) -> None:
    """The message names the key and where its object is; the outermost first."""
    with pytest.raises(DuplicateKeyError) as caught:
        strict_json.loads(text, "ack")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ('{"op": ["\\udc00"]}', StrictJSONError, "file.op[0]: a string with a lone surrogate (not Unicode)"),
        ("[" * 5000 + "]" * 5000, StrictJSONError, "file: nested too deeply"),
        (b"\xff{}", UnicodeDecodeError, "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        ('{"a": 1', json.JSONDecodeError, "Expecting ',' delimiter: line 1 column 8 (char 7)"),
    ],
)
def test_strict_json_other_refusals(data: str | bytes, error: type[ValueError], message: str) -> None:
    """A lone surrogate or too deep a nesting is refused with the place; bytes are UTF-8 only; bad JSON is json's
    own error (all of them ValueErrors)."""
    with pytest.raises(error) as caught:
        strict_json.loads(data, "file")
    assert str(caught.value) == message
