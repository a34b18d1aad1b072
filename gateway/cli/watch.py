"""`campus-edge watch`: follow a site's topics as a platform would, and account for every sequence number.

Each message is checked against the contract, de-duplicated by (gateway, seq), and counted. A gateway's
contiguous high-water mark is the highest seq below which every number has arrived or lies in a declared gap;
with `--ack` it is published (retained) as the platform acknowledgement that `delivery = "platform"` waits for.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.aio import reraise_if_cancelling
from gateway.base import strict_json
from gateway.base.contract import SCHEMA_ACK
from gateway.base.strict_json import StrictJSONError
from gateway.uplink.contract_check import SCHEMAS, ContractViolation, validate_message
from gateway.uplink.mqtt_client import Client


@dataclass
class Ledger:
    """What one gateway delivered."""

    received: set[int] = field(default_factory=set)
    declared: list[tuple[int, int]] = field(default_factory=list)
    duplicates: int = 0
    mark: int = 0
    max_seq: int = 0
    reordered: int = 0
    invalid: int = 0
    _last_telemetry: int = 0

    def declared_gap(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.declared)

    def note(self, seq: int, telemetry: bool) -> bool:
        """Record a seq; False if it was a duplicate."""
        if seq in self.received:
            self.duplicates += 1
            return False
        self.received.add(seq)
        self.max_seq = max(self.max_seq, seq)
        if telemetry:
            if seq < self._last_telemetry:
                self.reordered += 1
            self._last_telemetry = seq
        self.advance()
        return True

    def declare(self, first: int, last: int) -> None:
        self.declared.append((first, last))
        self.advance()

    def advance(self) -> None:
        while True:
            nxt = self.mark + 1
            if nxt in self.received:
                self.mark = nxt
                continue
            covering = [hi for lo, hi in self.declared if lo <= nxt <= hi]
            if not covering:
                return
            self.mark = max(covering)  # a declared range is accounted for as a whole

    def outstanding(self) -> list[int]:
        """Numbers below the highest received that have not arrived and are not declared lost."""
        return [s for s in range(self.mark + 1, self.max_seq) if s not in self.received and not self.declared_gap(s)]


@dataclass
class Watcher:
    """Accounts for the messages of one site (or one gateway)."""

    site: str
    gateway: str | None = None
    schemas: Path = SCHEMAS
    out: TextIO = sys.stdout
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    messages: int = 0
    invalid: int = 0
    arrivals: TextIO | None = None
    """If set, one line per seq-carrying message as it arrives: `gateway alarm|event|telemetry seq...`."""

    def topic_filter(self) -> str:
        return f"campus/v1/{self.site}/{self.gateway or '+'}/#"

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def handle(self, topic: str, raw: bytes) -> None:
        """Check and count one message."""
        self.messages += 1
        if topic.endswith("/ack"):
            return
        try:
            payload: Any = strict_json.loads(raw, "payload")  # a key twice: two readings, neither counted
            validate_message(topic, payload, self.schemas)
        except (ValueError, ContractViolation) as exc:
            if isinstance(exc, StrictJSONError):
                exc = ValueError(f"{topic}: {exc}")
            elif not isinstance(exc, ContractViolation):
                exc = ValueError(f"{topic}: not JSON: {exc}")
            self.invalid += 1
            parts = topic.split("/")
            if len(parts) > 3:
                self.ledgers.setdefault(parts[3], Ledger()).invalid += 1
            self.say(f"invalid   {exc}")
            return
        gw = payload["gateway"]
        ledger = self.ledgers.setdefault(gw, Ledger())
        if self.arrivals is not None:
            if "readings" in payload:
                seqs = " ".join(str(r["seq"]) for r in payload["readings"])
                self.arrivals.write(f"{gw} telemetry {seqs}\n")
            elif "seq" in payload:
                kind = "alarm" if payload.get("severity") == "alarm" else "event"  # a report has no severity
                self.arrivals.write(f"{gw} {kind} {payload['seq']}\n")
            self.arrivals.flush()
        if "readings" in payload:
            for r in payload["readings"]:
                if not ledger.note(r["seq"], telemetry=True):
                    self.say(f"duplicate {gw} seq {r['seq']}")
        elif "seq" in payload:
            if not ledger.note(payload["seq"], telemetry=False):
                self.say(f"duplicate {gw} seq {payload['seq']}")
            if payload.get("class") == "gap":  # reports carry a seq too, and no class
                d = payload.get("detail", {})
                ledger.declare(int(d["first_seq"]), int(d["last_seq"]))
                self.say(
                    f"declared  {gw} gap seq {d['first_seq']}-{d['last_seq']} ({d.get('count')}, {d.get('reason')})"
                )

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per gateway: received, contiguous mark, outstanding, duplicates, declared gaps."""
        return {
            gw: {
                "received": len(ledger.received),
                "max_seq": ledger.max_seq,
                "contiguous": ledger.mark,
                "outstanding": len(ledger.outstanding()),
                "duplicates": ledger.duplicates,
                "reordered": ledger.reordered,
                "invalid": ledger.invalid,
                "declared_gaps": [list(g) for g in ledger.declared],
                "outstanding_seqs": ledger.outstanding()[:100],
            }
            for gw, ledger in sorted(self.ledgers.items())
        }

    def print_summary(self) -> None:
        for gw, s in self.summary().items():
            self.say(
                f"summary   {gw}: {s['received']} received, contiguous to {s['contiguous']} of {s['max_seq']}, "
                f"{s['outstanding']} outstanding, {s['duplicates']} duplicates, {len(s['declared_gaps'])} declared gaps"
            )
        if self.invalid:
            self.say(f"summary   {self.invalid} messages did not match the contract")


def _client(url: str, ca_file: Path | None, identifier: str | None) -> Client:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
    tls = parts.scheme == "mqtts"
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None) if tls else None
    properties = None
    if identifier:
        # MQTT 5 ends a session with its connection unless it is given an expiry: keep it a day, so that what
        # arrives while the watch tool reconnects is queued for it.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 86_400
    return Client(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        clean_start=not identifier,
        properties=properties,
    )


async def watch(
    watcher: Watcher,
    url: str,
    *,
    ack: bool = False,
    ca_file: Path | None = None,
    client_id: str | None = None,
    summary_every_s: float = 10.0,
) -> None:
    """Follow the site until cancelled, reconnecting as needed; with `ack`, acknowledge what is stored."""
    loop = asyncio.get_running_loop()
    acked: dict[str, int] = {}
    while True:
        try:
            async with _client(url, ca_file, client_id) as client:
                await client.subscribe(watcher.topic_filter(), qos=1)
                next_summary = loop.time() + summary_every_s
                async for msg in client.messages:
                    if isinstance(msg.payload, bytes | bytearray):
                        watcher.handle(str(msg.topic), bytes(msg.payload))
                    if ack:
                        for gw, ledger in watcher.ledgers.items():
                            if ledger.mark > acked.get(gw, 0):
                                acked[gw] = ledger.mark
                                body = {"schema": SCHEMA_ACK, "site": watcher.site, "gateway": gw, "seq": ledger.mark}
                                await client.publish(
                                    f"campus/v1/{watcher.site}/{gw}/ack", json.dumps(body), qos=1, retain=True
                                )
                                reraise_if_cancelling()
                    if loop.time() >= next_summary:
                        watcher.print_summary()
                        next_summary = loop.time() + summary_every_s
        except aiomqtt.MqttError as exc:
            reraise_if_cancelling(exc)
            watcher.say(f"link      {url}: {exc}; reconnecting")
            await asyncio.sleep(1.0)  # reconnect back-off of a command-line tool
