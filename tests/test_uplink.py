"""The MQTT link: TLS verification, MQTT 3.1.1, and what the platform sees when a gateway goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.store.outbox import PRIORITY_ALARM
from simulators.broker import PrivateBroker
from simulators.devices import AnalogModuleSim, FirePanelSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"


def tls_files(tmp_path: Path, ca: trustme.CA, name: str) -> tuple[Path, Path, Path]:
    """CA file, server certificate chain and key for 127.0.0.1."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / f"{name}-ca.pem"
    chain = tmp_path / f"{name}-server.pem"
    key = tmp_path / f"{name}-server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    return ca_file, chain, key


@pytest.fixture
def tls_broker(tmp_path: Path) -> Any:
    """A mosquitto that speaks only TLS, with a certificate from a CA made for this test."""
    ca = trustme.CA()
    files = tls_files(tmp_path, ca, "good")
    broker = PrivateBroker(tmp_path / "tls-broker", tls=files)
    broker.start()
    yield broker, files[0]
    broker.stop()


async def test_uplink_tls_with_the_right_ca_connects(tmp_path: Path, tls_broker: Any) -> None:
    """mqtts:// with the platform's CA verifies the broker's certificate and publishes the birth message."""
    broker, ca_file = tls_broker
    text = config_text(tmp_path / "state", broker.url, [], [], mqtt_extra=f'ca_file = "{ca_file}"\n')
    async with running_gateway(make_config(text)) as gw:
        await watch_gateway(gw).until(lambda: gw.uplink.connections >= 1 and gw.uplink.published_messages >= 1)
        assert gw.uplink.failures == 0


async def test_uplink_tls_with_another_ca_is_refused(tmp_path: Path, tls_broker: Any) -> None:
    """A broker whose certificate the configured CA did not sign is never trusted: no connection at all."""
    broker, _ = tls_broker
    stranger = tls_files(tmp_path, trustme.CA(), "other")[0]
    text = config_text(tmp_path / "state", broker.url, [], [], mqtt_extra=f'ca_file = "{stranger}"\n')
    async with running_gateway(make_config(text)) as gw:
        await watch_gateway(gw).until(lambda: gw.uplink.failures >= 2)
        assert gw.uplink.connections == 0
        assert "CERTIFICATE_VERIFY_FAILED" in gw.uplink.last_error


async def test_uplink_mqtt_311_selectable(tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any) -> None:
    """protocol = "3.1.1" talks MQTT 3.1.1 and still delivers events."""
    panel = FirePanelSim()
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "tcp-1", **endpoint}],
            [{"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            mqtt_extra='protocol = "3.1.1"\n',
        )
        async with running_gateway(make_config(text)):
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1")
            panel.alarm_point(1)
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/fire")


async def test_uplink_keeps_what_the_broker_refuses(tmp_path: Path, subscriber_factory: Any) -> None:
    """An MQTT 5 PUBACK that refuses a message (an ACL: 0x87) leaves its rows in the outbox; they go out later."""
    deny_fire = f"topic readwrite campus/#\ntopic deny {PREFIX}/event/fire\n"
    own = PrivateBroker(tmp_path / "acl-broker", acl=deny_fire)
    own.start()
    try:
        panel = FirePanelSim()
        sub = await subscriber_factory(own.url, f"{PREFIX}/#")
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {1: panel}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            text = config_text(
                tmp_path / "state",
                own.url,
                [{"id": "tcp-1", **endpoint}],
                [{"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            )
            async with running_gateway(make_config(text)) as gw:
                signal = watch_gateway(gw)
                await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1")
                panel.alarm_point(4)
                await signal.until(lambda: gw.uplink.refused_messages >= 2)  # refused, and refused again on retry
                assert "0x87" in gw.uplink.last_error
                assert "event/fire" in gw.uplink.last_error
                kept = gw.outbox.fetch(PRIORITY_ALARM, 0, 10)
                assert [r.topic for r in kept] == [f"{PREFIX}/event/fire"]
                # The rest of the stream is not held up behind the refused alarm.
                seen = len(sub.messages)
                panel.set(supervisory=True)
                await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/supervisory" and len(sub.messages) > seen)
                assert not any(t == f"{PREFIX}/event/fire" for t, _ in sub.messages)
                own.set_acl("topic readwrite campus/#\n")
                _, fire = await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/fire")
                assert fire["seq"] == kept[0].seq
                assert fire["state"] == "raised"
                await signal.until(lambda: not gw.outbox.fetch(PRIORITY_ALARM, 0, 10))
    finally:
        own.stop()


async def test_uplink_a_refused_retained_state_does_not_keep_the_link_down(
    tmp_path: Path, subscriber_factory: Any
) -> None:
    """A broker whose ACL refuses one retained topic (here the open alarms) and drops the link after each refusal,
    as mosquitto does: the topic is not offered again at every reconnect, so events keep flowing."""
    own = PrivateBroker(tmp_path / "acl-broker", acl=f"topic readwrite campus/#\ntopic deny {PREFIX}/alarms\n")
    own.start()
    try:
        panel = FirePanelSim()
        sub = await subscriber_factory(own.url, f"{PREFIX}/event/#")
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {1: panel}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            text = config_text(
                tmp_path / "state",
                own.url,
                [{"id": "tcp-1", **endpoint}],
                [{"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            )
            async with running_gateway(make_config(text)) as gw:
                signal = watch_gateway(gw)
                await signal.until(lambda: gw.uplink.refused_messages >= 1)
                for i in range(1, 6):
                    panel.set(supervisory=i % 2 == 1)
                    state = "raised" if i % 2 == 1 else "cleared"
                    await sub.wait_for(
                        lambda t, p, state=state: t == f"{PREFIX}/event/supervisory" and p["state"] == state,
                        timeout_s=5,
                    )
                    sub.messages.clear()
                assert gw.uplink.connections <= 3, f"{gw.uplink.connections} connections for one refused topic"
    finally:
        own.stop()


async def test_uplink_back_on_the_link_once_the_broker_port_opens_not_after_the_back_off(tmp_path: Path) -> None:
    """A broker back from an outage is found by the port probe: the gateway reconnects then, not when a 15-30 s
    back-off runs out (an alarm raised in the outage waited that long)."""
    own = PrivateBroker(tmp_path / "broker")
    own.start()
    try:
        panel = FirePanelSim()
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {1: panel}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            device = {"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}
            text = config_text(tmp_path / "state", own.url, [{"id": "tcp-1", **endpoint}], [device])
            text = text.replace(
                "reconnect_min_s = 0.1\nreconnect_max_s = 0.5", "reconnect_min_s = 30\nreconnect_max_s = 30"
            )
            async with running_gateway(make_config(text)) as gw:
                signal = watch_gateway(gw)
                await signal.until(gw.uplink.connected.is_set)
                own.stop()
                await signal.until(lambda: gw.uplink.failures >= 1 and not gw.uplink.connected.is_set())
                panel.alarm_point(4)  # raised in the outage
                await signal.until(lambda: bool(gw.outbox.fetch(PRIORITY_ALARM, 0, 10)))
                own.start()
                # Well inside the back-off (at least 15 s): only the probe can bring the link back this soon.
                await signal.until(lambda: gw.uplink.connections == 2 and gw.outbox.depth() == 0, timeout_s=12.0)
                assert gw.uplink.early_reconnects == 1
    finally:
        own.stop()


async def test_uplink_a_backlog_drain_says_so_in_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Draining thousands of rows with the windows full logs one line with its size and rate, not a warning of
    the MQTT library per batch."""
    own = PrivateBroker(tmp_path / "broker")
    module = AnalogModuleSim(churn=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            bus, endpoint = await open_sim_bus("tcp", {1: module}, tmp_path, stack)
            await bus.__aexit__(None, None, None)
            device = {"id": "ai-1", "bus": "tcp-1", "unit": 1, "profile": "analog_module", "poll_interval_s": 0.01}
            text = config_text(tmp_path / "state", own.url, [{"id": "tcp-1", **endpoint}], [device])
            text = text.replace("[mqtt]\n", "[mqtt]\nbatch_max_readings = 20\n")  # many messages per drain
            async with running_gateway(make_config(text)) as gw:
                signal = watch_gateway(gw)
                await signal.until(lambda: gw.outbox.depth() > 3000)  # the broker is not up yet
                module.churn = False
                with caplog.at_level(logging.INFO):
                    own.start()
                    await signal.until(lambda: gw.uplink.connected.is_set() and gw.outbox.depth() == 0, 60.0)
                    await asyncio.sleep(0.5)  # the line comes once the drain finds nothing more to send
        pending = [r for r in caplog.records if "pending publish calls" in r.getMessage()]
        drained = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backlog of ")]
        assert pending == []
        assert len(drained) == 1, drained
        assert re.fullmatch(r"backlog of \d+ messages sent in [\d.]+ s \(\d+ publishes, \d+ messages/s\)", drained[0])
    finally:
        own.stop()
