"""An aiomqtt client that tells a refused QoS 1 message from a delivered one.

An MQTT 5 broker may answer a PUBLISH with a PUBACK whose reason code refuses it (0x87 not authorised by an ACL,
0x97 quota exceeded, 0x99 payload format invalid). aiomqtt completes the publish either way, and deleting the rows
of a refused message would lose them, alarms included. paho reports the reason code to `on_publish`; this client
keeps the failures by message id and lets the publishing task ask for its own. MQTT 3.1.1 has no reason codes: a
3.1.1 broker that drops a message for its ACL still acknowledges it, which is why protocol 5 is the default.

aiomqtt keeps its paho client private (`_client`, `_on_publish`); the versions are pinned in constraints/runtime.txt and
tests/test_uplink.py fails if either hook stops working.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from types import TracebackType
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

# The message id of the last PUBLISH each task handed to paho: publish() calls paho before its first await, so
# the id set there belongs to the task that awaits the acknowledgement.
_last_mid: contextvars.ContextVar[int | None] = contextvars.ContextVar("campus_edge_last_mid", default=None)


class Client(aiomqtt.Client):
    """aiomqtt.Client plus `publish_qos1()`, the verdict of the broker on this task's last QoS 1 message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused: dict[int, ReasonCode] = {}
        publish = self._client.publish

        def publish_and_remember(*a: Any, **kw: Any) -> paho_mqtt.MQTTMessageInfo:
            info = publish(*a, **kw)
            _last_mid.set(info.mid)
            return info

        self._client.publish = publish_and_remember  # type: ignore[method-assign]

    def _on_publish(
        self,
        client: paho_mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        if reason_code.is_failure:
            self._refused[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            # A broken connection leaves its error in a future nobody awaits; the uplink has already seen the
            # failure, so mark it seen rather than have asyncio print "Future exception was never retrieved".
            if self._disconnected.done() and not self._disconnected.cancelled():
                self._disconnected.exception()

    async def publish_qos1(self, topic: str, payload: bytes, *, retain: bool, within_s: float) -> ReasonCode | None:
        """Publish at QoS 1 and wait for the PUBACK: None if the broker took the message, else its refusal.

        The deadline is ours (TimeoutError): aiomqtt's own uses asyncio.wait_for, which on Python 3.11 can swallow
        a cancellation that arrives as the wait ends.
        """
        _last_mid.set(None)
        async with asyncio.timeout(within_s):
            await self.publish(topic, payload, qos=1, retain=retain, timeout=math.inf)
        mid = _last_mid.get()
        return None if mid is None else self._refused.pop(mid, None)
