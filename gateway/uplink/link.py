"""The MQTT link to the platform: birth and will, retained state, and draining the outbox at QoS 1.

Rows leave the outbox only after the broker's PUBACK for the message that carried them. After any failure the
connection is dropped, the read cursors go back to the start and everything unacknowledged is sent again (at
least once; the platform drops duplicates by seq). Each reconnect waits a capped, jittered, growing delay and
moves on to the next broker URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.aio import reraise_if_cancelling
from gateway.base import strict_json
from gateway.base.clock import Clock, rfc3339_ms
from gateway.base.contract import SCHEMA_ACK, SCHEMA_STATUS, Topics
from gateway.base.strict_json import StrictJSONError
from gateway.config import MqttConfig
from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY, Outbox, Row
from gateway.store.stateboard import StateBoard
from gateway.uplink.mqtt_client import Client
from gateway.uplink.mqtt_tls import password, tls_context
from gateway.uplink.payloads import event_payload, telemetry_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the birth message says about this gateway run."""

    version: str
    config_hash: str
    boot_id: str
    walk_test: bool = False  # an installer's walk test runs this gateway (`"walk_test": true` in the status)

    @staticmethod
    def new(version: str, config_hash: str, walk_test: bool = False) -> Identity:
        """A fresh boot id for this process."""
        return Identity(version, config_hash, uuid.uuid4().hex, walk_test)


PROBE_INTERVAL_S = 0.5  # while the broker's port is closed, how often it is tried (one TCP connect, closed at once)
PROBE_JITTER_S = 1.0  # once it opens, a random wait up to this before connecting: gateways do not come back in step
STATE_REFUSAL_HOLD_S = 300.0  # a retained state the broker refused is not offered again sooner (an ACL to fix)
URGENT_INFLIGHT = 8  # alarms and events on the wire at once, beside the telemetry window


BACKLOG_LOGGED = 1000  # a session that starts with more rows waiting says so, once at its start and once at its end


@dataclass(slots=True)
class _Backlog:
    """The rows waiting when a session began, for the one line that reports the drain."""

    rows: int
    began: float
    published: int


class _LinkDown(Exception):
    """The connection failed while publishing; reconnect."""


class Uplink:
    """Publishes what the outbox holds and what the state board says."""

    def __init__(
        self,
        cfg: MqttConfig,
        topics: Topics,
        outbox: Outbox,
        board: StateBoard,
        identity: Identity,
        clock: Clock,
        client_id: str,
    ) -> None:
        self.cfg = cfg
        self.topics = topics
        self.outbox = outbox
        self.board = board
        self.identity = identity
        self.clock = clock
        self.client_id = client_id
        self.connected = asyncio.Event()
        self.published_messages = 0
        self.connections = 0
        self.failures = 0
        self.early_reconnects = 0  # reconnects made before the back-off ran out, the broker's port seen open again
        self.last_error = ""
        self.on_link_change: list[Callable[[], None]] = []
        self.acked_seq = 0
        self.refused_messages = 0
        # Commands from the platform: (target, payload, response topic, correlation data); see gateway/commands.
        self.on_command: Callable[[str, bytes, str | None, bytes | None], object] | None = None
        self._live: Client | None = None
        self.listening = asyncio.Event()  # subscribed to commands on the current connection
        self._refused_states: dict[str, float] = {}  # retained topics the broker refused -> not again before
        self._refusals_seen: set[tuple[str, int]] = set()
        # Rows of refused messages, by seq, and when they may be offered again. Some brokers drop the connection
        # after a refusal: without the hold, a refused alarm at the head of every new session would starve the rest.
        self._held: dict[int, float] = {}
        self._retry_refused_at: float | None = None
        self._ack_progress = 0.0
        self._wake = asyncio.Event()
        outbox.on_commit(self._wake.set)

    def _status(self, state: str, reason: str | None, since_ms: int) -> bytes:
        body: dict[str, object] = {"state": state}
        if reason is not None:
            body["reason"] = reason
        body |= {
            "version": self.identity.version,
            "config_hash": self.identity.config_hash,
            "boot_id": self.identity.boot_id,
            "ts": rfc3339_ms(since_ms),
        }
        if self.identity.walk_test:
            body["walk_test"] = True
        return (self.topics.head(SCHEMA_STATUS) + json.dumps(body, separators=(",", ":"))[1:]).encode()

    def _client(self, url: str, since_ms: int) -> Client:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        port = parts.port or (8883 if tls else 1883)
        context = tls_context(self.cfg) if tls else None
        protocol = aiomqtt.ProtocolVersion.V5 if self.cfg.protocol == "5" else aiomqtt.ProtocolVersion.V311
        assert parts.hostname is not None
        client = Client(
            parts.hostname,
            port,
            identifier=self.client_id,
            protocol=protocol,
            username=self.cfg.username,
            password=password(self.cfg),
            will=aiomqtt.Will(self.topics.status, self._status("offline", "will", since_ms), qos=1, retain=True),
            keepalive=self.cfg.keepalive_s,
            timeout=self.cfg.publish_timeout_s,
            tls_context=context,
            clean_session=True if protocol is aiomqtt.ProtocolVersion.V311 else None,
            max_inflight_messages=self.cfg.inflight_max + URGENT_INFLIGHT,
        )
        # aiomqtt warns "There are N pending publish calls" past 10 calls waiting for their PUBACK; the drain keeps
        # up to its windows on the wire on purpose (one line per batch during a drain, 500-780 a drain).
        client.pending_calls_threshold = self.cfg.inflight_max + URGENT_INFLIGHT + 4
        return client

    async def run(self) -> None:
        """Connect, publish, and reconnect forever (until cancelled)."""
        attempt = 0
        index = 0
        while True:
            url = self.cfg.urls[index % len(self.cfg.urls)]
            since_ms = self.clock.wall_ms()
            began = asyncio.get_running_loop().time()
            try:
                async with self._client(url, since_ms) as client:
                    self.connections += 1
                    log.info("connected to %s", url)
                    await self._session(client, since_ms)
            except (aiomqtt.MqttError, _LinkDown, OSError, TimeoutError) as exc:
                reraise_if_cancelling(exc)
                self.connected.clear()
                self.failures += 1
                if str(exc) != self.last_error:
                    log.warning("link to %s down: %s", url, exc)
                self.last_error = str(exc)
                for listener in self.on_link_change:
                    listener()
            index += 1
            # The back-off starts again only after a session that lasted: a broker that accepts the connection
            # and drops it at once (a refused will, an ACL, a full queue) must not be hammered.
            lasted = asyncio.get_running_loop().time() - began >= self.cfg.reconnect_max_s
            attempt = 1 if lasted else attempt + 1
            delay = min(self.cfg.reconnect_max_s, self.cfg.reconnect_min_s * 2 ** min(attempt - 1, 16))
            await self._back_off(delay * random.uniform(0.5, 1.0), self.cfg.urls[index % len(self.cfg.urls)])

    async def _back_off(self, delay_s: float, url: str) -> None:
        """Wait out `delay_s` before connecting to `url`, or less: a broker whose port was seen closed and then
        open again is back, and is tried after a short random wait instead of the rest of the back-off.

        The back-off alone (capped at `reconnect_max_s`) kept a healed link idle for up to half a minute, an
        alarm raised in the outage with it. The probe is a TCP connect, closed at once, every PROBE_INTERVAL_S
        while the port is closed; once it is seen open it is not probed again in this wait, so a broker that
        takes connections and drops the session (an ACL, a refused will) is not knocked on every interval. The
        random wait after the port opens spreads the reconnects of a city's gateways over PROBE_JITTER_S.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + delay_s
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        seen_closed = False
        while (left := end - loop.time()) > 0:
            if await _port_open(host, port, min(PROBE_INTERVAL_S, left)):
                if seen_closed:
                    self.early_reconnects += 1
                    await asyncio.sleep(random.uniform(0, min(left, PROBE_JITTER_S)))
                    return
                await asyncio.sleep(max(0.0, end - loop.time()))
                return
            seen_closed = True
            await asyncio.sleep(min(PROBE_INTERVAL_S, max(0.0, end - loop.time())))

    async def say_goodbye(self, client: Client) -> None:
        """On an orderly stop, publish the retained state changed in the last moments (the list of open alarms
        above all: a platform connecting while the gateway is down reads it), then the retained offline status."""
        for topic, payload in self.board.take_dirty():
            if topic not in self._refused_states:
                await client.publish(topic, payload, qos=1, retain=True, timeout=self.cfg.publish_timeout_s)
        await client.publish(
            self.topics.status,
            self._status("offline", "shutdown", self.clock.wall_ms()),
            qos=1,
            retain=True,
            timeout=self.cfg.publish_timeout_s,
        )

    async def _session(self, client: Client, since_ms: int) -> None:
        await self._publish(client, self.topics.status, self._status("online", None, since_ms), retain=True)
        self.board.mark_all_dirty()
        self.connected.set()
        for listener in self.on_link_change:
            listener()
        try:
            try:
                # The drain runs in the body, not as a child: on Python 3.11 a TaskGroup whose body has already
                # finished does not take back the cancellation it sends its parent when a child fails, and a
                # stale cancellation would end the uplink instead of reconnecting it.
                async with asyncio.TaskGroup() as tg:
                    if self.cfg.delivery == "platform":
                        await client.subscribe(self.topics.ack, qos=1, timeout=self.cfg.publish_timeout_s)
                    if self.on_command is not None:
                        await client.subscribe(self.topics.commands, qos=1, timeout=self.cfg.publish_timeout_s)
                        self._live = client
                        self.listening.set()
                    if self.cfg.delivery == "platform" or self.on_command is not None:
                        tg.create_task(self._inbound(client), name="uplink-inbound")
                    tg.create_task(self._states(client), name="uplink-state")
                    await self._drain(client)
            except* (aiomqtt.MqttError, TimeoutError, _LinkDown) as group:
                raise _LinkDown(_first_leaf(group)) from None
        except asyncio.CancelledError:
            # An orderly stop: say so before the will does.
            try:
                async with asyncio.timeout(self.cfg.publish_timeout_s):
                    await self.say_goodbye(client)
            except (aiomqtt.MqttError, TimeoutError):
                pass
            raise
        finally:
            self._live = None
            self.listening.clear()
            self.connected.clear()

    async def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        """A reply to a command, on its response topic with its correlation data (MQTT 5). Not kept if the link
        is down: the command's audit event, which is, tells the platform the same."""
        client = self._live
        if client is None:
            return
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation is not None:
            properties.CorrelationData = correlation
        try:
            await client.publish(topic, payload, qos=1, properties=properties, timeout=self.cfg.publish_timeout_s)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            reraise_if_cancelling(exc)
            log.info("reply to %s not sent: %s", topic, exc)

    async def _publish(self, client: Client, topic: str, payload: bytes, retain: bool = False) -> bool:
        """True once the broker has taken the message; False if it refused it (the caller keeps it to retry)."""
        try:
            refusal = await client.publish_qos1(topic, payload, retain=retain, within_s=self.cfg.publish_timeout_s)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            reraise_if_cancelling(exc)
            why = str(exc) or f"no PUBACK within {self.cfg.publish_timeout_s:g} s"
            raise _LinkDown(f"publish to {topic}: {why}") from exc
        reraise_if_cancelling()
        if refusal is not None:
            self.refused_messages += 1
            self.last_error = f"{topic}: refused by the broker: {refusal} (0x{refusal.value:02x})"
            if (topic, refusal.value) not in self._refusals_seen:
                # Once per topic and reason: a broker ACL that refuses alarms must be loud, but not flood the log.
                self._refusals_seen.add((topic, refusal.value))
                log.error("%s: kept in the outbox, offered again in %g s", self.last_error, self.cfg.reconnect_max_s)
            return False
        self.published_messages += 1
        return True

    async def _states(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.board.changed.wait()
            for topic, payload in self.board.take_dirty():
                if self._refused_states.get(topic, 0.0) > loop.time():
                    # Refused lately: some brokers drop the link after a refusal, and a retained state offered
                    # again at every reconnect would keep the link down for everything else.
                    continue
                if not await self._publish(client, topic, payload, retain=True):
                    self._refused_states[topic] = loop.time() + STATE_REFUSAL_HOLD_S
            await asyncio.sleep(0.2)  # coalesce bursts: retained state is last-value-wins

    async def _inbound(self, client: Client) -> None:
        """What the platform sends: acknowledgements, and commands (handed over as they are, verified there)."""
        async for msg in client.messages:
            topic = str(msg.topic)
            if topic.startswith(self.topics.command_prefix) and self.on_command is not None:
                payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                props = msg.properties
                response = getattr(props, "ResponseTopic", None) if props is not None else None
                correlation = getattr(props, "CorrelationData", None) if props is not None else None
                self.on_command(topic.removeprefix(self.topics.command_prefix), payload, response, correlation)
                continue
            if topic != self.topics.ack:
                continue
            seq = parse_ack(self.topics, msg.payload, self.outbox.last_seq())
            if seq is None or seq <= self.acked_seq:
                continue
            self.acked_seq = seq
            self._ack_progress = asyncio.get_running_loop().time()
            removed = self.outbox.delete_upto(seq)
            log.debug("platform acknowledged up to seq %d: %d rows released", seq, removed)

    async def _drain(self, client: Client) -> None:
        cursors = {PRIORITY_ALARM: 0, PRIORITY_EVENT: 0, PRIORITY_TELEMETRY: 0}
        # Alarms and events have in-flight room of their own: waiting for a telemetry batch's PUBACK to free a
        # slot put up to 60 ms between a fire and the wire while a backlog drained (bench b2).
        urgent = asyncio.Semaphore(URGENT_INFLIGHT)
        window = asyncio.Semaphore(self.cfg.inflight_max)
        loop = asyncio.get_running_loop()
        self._ack_progress = loop.time()
        backlog = _Backlog(self.outbox.depth(), loop.time(), self.published_messages)
        if backlog.rows > BACKLOG_LOGGED:
            log.info("sending a backlog of %d messages", backlog.rows)
        async with asyncio.TaskGroup() as tg:
            while True:
                self._wake.clear()
                sent = False
                if self._retry_refused_at is not None and loop.time() >= self._retry_refused_at:
                    # Refused rows stayed in the outbox behind the cursors: go over everything once more.
                    now = loop.time()
                    self._held = {seq: t for seq, t in self._held.items() if t > now}
                    self._retry_refused_at = min(self._held.values(), default=None)
                    cursors = dict.fromkeys(cursors, 0)
                for priority in (PRIORITY_ALARM, PRIORITY_EVENT):
                    for row in self.outbox.fetch(priority, cursors[priority], 100):
                        cursors[priority] = row.seq
                        if row.seq in self._held:
                            continue
                        await urgent.acquire()
                        payload = event_payload(self.topics, row)
                        tg.create_task(self._send(client, row.topic or "", payload, [row], urgent))
                        sent = True
                if window.locked():
                    # Every telemetry slot is on the wire: wait for one to come back or for an alarm, which goes
                    # first either way.
                    await self._wake.wait()
                    continue
                # Telemetry one batch at a time, so alarms committed meanwhile go next.
                rows = self.outbox.fetch(PRIORITY_TELEMETRY, cursors[PRIORITY_TELEMETRY], self.cfg.batch_max_readings)
                if rows:
                    cursors[PRIORITY_TELEMETRY] = rows[-1].seq
                    if self._held:
                        rows = [r for r in rows if r.seq not in self._held]
                if rows:
                    await window.acquire()  # free: checked above
                    payload = telemetry_payload(self.topics, rows)
                    tg.create_task(self._send(client, self.topics.telemetry, payload, rows, window))
                    sent = True
                if sent:
                    continue
                if backlog.rows > BACKLOG_LOGGED:
                    # One line for the whole drain, not one per batch.
                    took = loop.time() - backlog.began
                    sent_n = self.published_messages - backlog.published
                    log.info("backlog of %d messages sent in %.1f s (%d publishes, %.0f messages/s)",
                             backlog.rows, took, sent_n, backlog.rows / max(took, 1e-3))  # fmt: skip
                    backlog.rows = 0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                if (
                    self.cfg.delivery == "platform"
                    and loop.time() - self._ack_progress > self.cfg.ack_timeout_s
                    and self.outbox.depth() > 0
                ):
                    # Sent, acknowledged by the broker, never by the platform: send it all again.
                    log.warning("no platform acknowledgement for %g s: sending unacknowledged rows again",
                                self.cfg.ack_timeout_s)  # fmt: skip
                    cursors = dict.fromkeys(cursors, 0)
                    self._ack_progress = loop.time()

    async def _send(
        self, client: Client, topic: str, payload: bytes, rows: list[Row], window: asyncio.Semaphore
    ) -> None:
        try:
            if await self._publish(client, topic, payload):
                if self.cfg.delivery == "broker":
                    self.outbox.delete_sent(rows)
            else:
                until = asyncio.get_running_loop().time() + self.cfg.reconnect_max_s
                self._held.update(dict.fromkeys((r.seq for r in rows), until))
                if self._retry_refused_at is None:
                    self._retry_refused_at = until
        finally:
            window.release()
            self._wake.set()  # a slot is free: the drain may go on


async def _port_open(host: str, port: int, within_s: float) -> bool:
    """Whether a TCP connection to host:port opens within `within_s` (closed again at once)."""
    try:
        async with asyncio.timeout(within_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> str:
    """The message of the first real error in a (nested) exception group, for the log."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


def parse_ack(topics: Topics, payload: object, last_seq: int) -> int | None:
    """The seq of a valid platform acknowledgement, or None (logged with the topic) for anything else."""
    try:
        data = strict_json.loads(payload if isinstance(payload, bytes | bytearray | str) else b"", "ack")
    except StrictJSONError as exc:  # two "seq"s: which one the platform meant is not ours to guess
        log.warning("%s: ignored: %s", topics.ack, exc)
        return None
    except ValueError:
        data = None
    if (
        not isinstance(data, dict)
        or data.get("schema") != SCHEMA_ACK
        or data.get("site") != topics.site
        or data.get("gateway") != topics.gateway
        or not isinstance(data.get("seq"), int)
        or isinstance(data.get("seq"), bool)
    ):
        log.warning("%s: ignored: expected {\"schema\": \"%s\", \"site\", \"gateway\", \"seq\": int}",
                    topics.ack, SCHEMA_ACK)  # fmt: skip
        return None
    seq = int(data["seq"])
    if not 0 <= seq <= last_seq:
        log.warning("%s: ignored: seq %d is beyond the last committed seq %d", topics.ack, seq, last_seq)
        return None
    return seq
