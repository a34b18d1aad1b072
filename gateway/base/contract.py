"""The names of the platform contract (docs/contract/), version 1: the topic tree, the schema ids, the command
actions. Imports nothing of the gateway: every layer may use it."""

from __future__ import annotations

import json

# The contract's version: the `v1` of the topic tree and the `/1` of every schema id below (spelt out, so that
# they can be found; a test holds them to this). A change that breaks a platform's reader makes version 2.
CONTRACT_VERSION = 1

SCHEMA_STATUS = "campus-edge/status/1"
SCHEMA_TELEMETRY = "campus-edge/telemetry/1"
SCHEMA_EVENT = "campus-edge/event/1"
SCHEMA_REPORT = "campus-edge/report/1"
SCHEMA_STATE = "campus-edge/state/1"
SCHEMA_ACK = "campus-edge/ack/1"
SCHEMA_COMMISSIONING = "campus-edge/commissioning/1"
SCHEMA_HEALTH = "campus-edge/health/1"

# What a signed command may ask (docs/commands.md); EFO and the interlocks are not among them.
ACTIONS: tuple[str, ...] = ("bollard.raise", "bollard.lower", "bollard.stop", "site.lockdown", "alarm.ack")


class Topics:
    """Topics under `campus/v1/{site}/{gateway}`."""

    def __init__(self, site: str, gateway: str) -> None:
        self.site = site
        self.gateway = gateway
        self.prefix = f"campus/v{CONTRACT_VERSION}/{site}/{gateway}"
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
