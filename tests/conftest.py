"""Shared fixtures: a private mosquitto, simulated buses over TCP and pseudo-terminals, mock pins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.aio import reraise_if_cancelling
from drivers.modbus import ModbusBus
from gateway.uplink.mqtt_client import Client
from simulators.broker import PrivateBroker
from simulators.contacts import contact_pin_factory
from simulators.devices import SimDevice
from simulators.modbus_server import SimServer
from simulators.pty import PtyPair


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A mosquitto of our own on a free loopback port, for the whole session."""
    with PrivateBroker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture
def pin_factory() -> Any:
    """Mock pins that simulated contacts can drive."""
    factory = contact_pin_factory()
    yield factory
    factory.reset()


@dataclass
class SimBus:
    """A simulated Modbus line: the devices on it, and the gateway's bus object connected to it."""

    transport: str
    devices: dict[int, SimDevice]
    bus: ModbusBus


async def open_sim_bus(
    transport: str, devices: dict[int, SimDevice], tmp_path: Path, stack: Any
) -> tuple[ModbusBus, dict[str, Any]]:
    """Start simulators for `devices` on `transport` and return a connected bus and the endpoint settings."""
    if transport == "tcp":
        server = await stack.enter_async_context(SimServer.tcp(devices))
        host, port = server.address
        bus = await stack.enter_async_context(ModbusBus.tcp("line", host, port))
        return bus, {"type": "tcp", "host": host, "port": port}
    pair = await stack.enter_async_context(PtyPair(tmp_path / "gw-end", tmp_path / "dev-end"))
    await stack.enter_async_context(SimServer.rtu(devices, str(pair.device_end), 19200))
    bus = await stack.enter_async_context(ModbusBus.rtu("line", str(pair.gateway_end), 19200))
    return bus, {"type": "rtu", "port": str(pair.gateway_end), "baud": 19200}


@dataclass
class Subscriber:
    """A platform-side MQTT subscriber collecting (topic, payload) pairs."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    listeners: list[Callable[[], None]] = field(default_factory=list)

    async def wait_for(
        self, predicate: Callable[[str, dict[str, Any]], bool], timeout_s: float = 15.0
    ) -> tuple[str, dict[str, Any]]:
        """The first message (already received or coming) that satisfies `predicate`."""
        seen = 0
        async with asyncio.timeout(timeout_s):
            while True:
                for topic, payload in self.messages[seen:]:
                    if predicate(topic, payload):
                        return topic, payload
                seen = len(self.messages)
                self.arrived.clear()
                await self.arrived.wait()

    def seqs(self) -> list[int]:
        """Every sequence number received, in arrival order, duplicates included."""
        out: list[int] = []
        for _topic, payload in self.messages:
            if "readings" in payload:
                out.extend(r["seq"] for r in payload["readings"])
            elif "seq" in payload:
                out.append(payload["seq"])
        return out


async def subscribe(
    url: str, topic_filter: str, sub: Subscriber, ready: asyncio.Event, client_id: str | None = None
) -> None:
    """Run a subscriber until cancelled; with `client_id`, a persistent session that survives reconnects."""
    host, _, port = url.removeprefix("mqtt://").partition(":")
    while True:
        try:
            async with Client(host, int(port), identifier=client_id, clean_session=client_id is None) as client:
                await client.subscribe(topic_filter, qos=1)
                ready.set()
                async for msg in client.messages:
                    assert isinstance(msg.payload, bytes | bytearray)
                    sub.messages.append((str(msg.topic), json.loads(msg.payload)))
                    sub.arrived.set()
                    for listener in sub.listeners:
                        listener()
        except aiomqtt.MqttError as exc:
            reraise_if_cancelling(exc)
            await asyncio.sleep(0.05)  # reconnect back-off while the broker is down


@pytest.fixture
async def subscriber_factory() -> AsyncIterator[Callable[..., Any]]:
    """Start subscribers that are cancelled at the end of the test."""
    tasks: list[asyncio.Task[None]] = []

    async def start(url: str, topic_filter: str, client_id: str | None = None) -> Subscriber:
        sub = Subscriber()
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(subscribe(url, topic_filter, sub, ready, client_id)))
        async with asyncio.timeout(10):
            await ready.wait()
        return sub

    yield start
    for t in tasks:
        t.cancel()
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks, return_exceptions=True)
