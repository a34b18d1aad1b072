"""Validation of published messages against the contract in docs/contract/."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "contract" / "schemas"


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_for(topic: str) -> str:
    """The schema name of a topic under campus/v1/{site}/{gateway}/."""
    parts = topic.split("/")
    if parts[:2] != ["campus", "v1"] or len(parts) < 5:
        raise AssertionError(f"topic {topic!r} is not under campus/v1/{{site}}/{{gateway}}/")
    return {"status": "status", "telemetry": "telemetry", "event": "event", "state": "state"}[parts[4]]


def validate_message(topic: str, payload: dict[str, Any]) -> None:
    """Raise if a message does not match its schema, or its topic does not match its payload."""
    validator(schema_for(topic)).validate(payload)
    parts = topic.split("/")
    assert payload["site"] == parts[2]
    assert payload["gateway"] == parts[3]
    if parts[4] == "event":
        assert payload["class"] == parts[5]
    if parts[4] == "state":
        assert payload["device"] == parts[5]
