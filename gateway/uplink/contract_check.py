"""Checking messages against the published contract (docs/contract/schemas), for tests and `campus-edge watch`."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from gateway.base import strict_json

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "contract" / "schemas"
"""The schemas of a source checkout (the way the README installs campus-edge)."""


class ContractViolation(ValueError):
    """A message does not match the contract; the message names the topic and the failing field."""


@cache
def validator(name: str, folder: Path = SCHEMAS) -> jsonschema.protocols.Validator:
    """A validator for one schema (status, telemetry, event, state, ack)."""
    path = folder / f"{name}.schema.json"
    try:
        schema = strict_json.loads(path.read_text(encoding="utf-8"), "schema")
    except OSError as exc:
        raise ContractViolation(f"{path}: cannot read the contract schema: {exc.strerror}") from exc
    except ValueError as exc:  # a key twice in a schema: the one that counts depends on the reader
        raise ContractViolation(f"{path}: not a contract schema: {exc}") from exc
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


_KINDS = {
    "status": "status",
    "telemetry": "telemetry",
    "event": "event",
    "state": "state",
    "ack": "ack",
    "alarms": "alarms",
    "reply": "reply",
    "report": "report",
    "commissioning": "commissioning",
    "health": "health",
}


def schema_for(topic: str) -> str:
    """The schema name of a topic under campus/v1/{site}/{gateway}/."""
    parts = topic.split("/")
    if parts[:2] != ["campus", "v1"] or len(parts) < 5 or parts[4] not in _KINDS:
        raise ContractViolation(f"{topic}: not a topic of the v1 contract")
    return _KINDS[parts[4]]


def validate_message(topic: str, payload: Any, folder: Path = SCHEMAS) -> None:
    """Raise ContractViolation if a message does not match its schema or its topic."""
    try:
        validator(schema_for(topic), folder).validate(payload)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ContractViolation(f"{topic}: {where}: {exc.message}") from exc
    parts = topic.split("/")
    if parts[4] == "reply":
        return  # a reply names no site or gateway: it goes where the command asked
    checks = [("site", parts[2]), ("gateway", parts[3])]
    if parts[4] == "event":
        checks.append(("class", parts[5] if len(parts) > 5 else ""))
    if parts[4] == "state":
        checks.append(("device", parts[5] if len(parts) > 5 else ""))
    for key, expected in checks:
        if payload.get(key) != expected:
            raise ContractViolation(f"{topic}: {key}: {payload.get(key)!r} does not match the topic ({expected!r})")
