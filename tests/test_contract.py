"""The contract documents themselves: schemas are valid, examples pass, the AsyncAPI document names them all."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from gateway.uplink.contract_check import SCHEMAS, ContractViolation, schema_for, validator

NAMES = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))


@pytest.mark.parametrize("name", NAMES)
def test_contract_schema_examples_validate(name: str) -> None:
    """Each schema is valid draft 2020-12 and its own examples pass it."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert schema["examples"]
    for example in schema["examples"]:
        validator(name).validate(example)


def test_contract_asyncapi_references_every_schema() -> None:
    """The AsyncAPI document is version 3 and points at every schema file."""
    text = (SCHEMAS.parent / "asyncapi.yaml").read_text(encoding="utf-8")
    assert text.startswith("asyncapi: 3.0.0")
    for name in NAMES:
        assert f"./schemas/{name}.schema.json" in text


def test_contract_topic_routing() -> None:
    """Topics map to their schemas; anything outside campus/v1 is refused."""
    assert schema_for("campus/v1/s/g/event/fire") == "event"
    assert schema_for("campus/v1/s/g/state/facp-1") == "state"
    with pytest.raises(ContractViolation, match="campus/v2/s/g/status: not a topic of the v1 contract"):
        schema_for("campus/v2/s/g/status")


def test_contract_refuses_value_with_bad_quality() -> None:
    """A reading with quality offline must carry a null value."""
    msg: dict[str, Any] = {
        "schema": "campus-edge/telemetry/1", "site": "s", "gateway": "g",
        "readings": [{"seq": 1, "device": "d", "point": "fire", "value": False, "quality": "offline",
                      "ts": "2026-11-28T10:00:00.000Z", "clock_synced": True}],
    }  # fmt: skip
    with pytest.raises(jsonschema.ValidationError, match="False is not of type 'null'"):
        validator("telemetry").validate(msg)
