"""The topic tree and payload envelopes of the platform contract (docs/contract/), version 1."""

from __future__ import annotations

import json

from gateway.outbox import Row

SCHEMA_STATUS = "campus-edge/status/1"
SCHEMA_TELEMETRY = "campus-edge/telemetry/1"
SCHEMA_EVENT = "campus-edge/event/1"
SCHEMA_REPORT = "campus-edge/report/1"
SCHEMA_STATE = "campus-edge/state/1"
SCHEMA_ACK = "campus-edge/ack/1"
SCHEMA_COMMISSIONING = "campus-edge/commissioning/1"
SCHEMA_HEALTH = "campus-edge/health/1"


class Topics:
    """Topics under `campus/v1/{site}/{gateway}`."""

    def __init__(self, site: str, gateway: str) -> None:
        self.site = site
        self.gateway = gateway
        self.prefix = f"campus/v1/{site}/{gateway}"
        self.status = f"{self.prefix}/status"
        self.telemetry = f"{self.prefix}/telemetry"
        self.ack = f"{self.prefix}/ack"
        self.command_prefix = f"{self.prefix}/cmd/"
        self.commands = f"{self.prefix}/cmd/+"
        self.reply = f"{self.prefix}/reply"
        self.alarms = f"{self.prefix}/alarms"
        self.commissioning = f"{self.prefix}/commissioning"
        self.health = f"{self.prefix}/health"

    def report(self, period: str) -> str:
        """Where the hazard-check report of a period goes."""
        return f"{self.prefix}/report/{period}"

    def event(self, cls: str) -> str:
        """Topic of one event class."""
        return f"{self.prefix}/event/{cls}"

    def state(self, device: str) -> str:
        """Retained current state of one device."""
        return f"{self.prefix}/state/{device}"

    def head(self, schema: str) -> str:
        """The opening of every payload: `{"schema":..,"site":..,"gateway":..,` (the caller closes it)."""
        return (
            '{"schema":'
            + json.dumps(schema)
            + ',"site":'
            + json.dumps(self.site)
            + ',"gateway":'
            + json.dumps(self.gateway)
            + ","
        )


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
