"""Stored rows framed as contract payloads (docs/contract/): the seq goes in as each body's first field."""

from __future__ import annotations

from gateway.base.contract import SCHEMA_COMMISSIONING, SCHEMA_EVENT, SCHEMA_REPORT, SCHEMA_TELEMETRY, Topics
from gateway.store.outbox import Row


def with_seq(row: Row) -> str:
    """A stored body with its sequence number as the first field."""
    return '{"seq":' + str(row.seq) + "," + row.body[1:]


def telemetry_payload(topics: Topics, rows: list[Row]) -> bytes:
    """One telemetry message carrying many readings."""
    return (topics.head(SCHEMA_TELEMETRY) + '"readings":[' + ",".join(with_seq(r) for r in rows) + "]}").encode()


def event_payload(topics: Topics, row: Row) -> bytes:
    """One event message, a hazard-check report or a commissioning report (by the row's topic)."""
    schema = SCHEMA_EVENT
    if row.topic is not None and "/report/" in row.topic:
        schema = SCHEMA_REPORT
    elif row.topic is not None and row.topic.endswith("/commissioning"):
        schema = SCHEMA_COMMISSIONING
    return (topics.head(schema) + '"seq":' + str(row.seq) + "," + row.body[1:]).encode()
