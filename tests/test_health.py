"""Health telemetry and the metrics endpoint: a gateway against simulated devices with injected Modbus faults."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.base.errors import ConfigError
from gateway.service.health import cpu_temperature_c
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim, SmokeDetectorSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway

PREFIX = "campus/v1/test-school/gw-1"
HEALTH = "\n[health]\ninterval_s = 1\nmetrics_port = 0\n"


def _device(payload: dict[str, Any], device: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in payload["modbus"] if d["device"] == device)
    return found


def _faults_seen(topic: str, payload: dict[str, Any]) -> bool:
    if topic != f"{PREFIX}/health" or {"facp-1", "sd-101"} - {d["device"] for d in payload["modbus"]}:
        return False  # not this gateway's: the broker is shared, and an earlier test's health is retained
    panel, detector = _device(payload, "facp-1"), _device(payload, "sd-101")
    return bool(panel["crc_errors"] == 2 and panel["timeouts"] >= 3 and detector["exceptions"] == {"2": 1})


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def test_health_faults_reach_mqtt_and_metrics(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """CRC errors, dropped replies and an exception reply show in the health message and in the scraped metrics."""
    panel = FirePanelSim()
    detector = SmokeDetectorSim()
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("rtu-pty", {1: panel, 11: detector}, tmp_path, stack)
        await bus.__aexit__(None, None, None)  # the gateway opens its own
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "line", **endpoint, "timeout_ms": 1000, "retries": 2}],
            [
                {"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1},
                {"id": "sd-101", "bus": "line", "unit": 11, "profile": "smoke_detector", "poll_interval_s": 0.1},
            ],
            mqtt_extra=HEALTH,
        )
        async with running_gateway(make_config(text)) as gw:
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1" and p["online"])
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/sd-101" and p["online"])
            panel.faults.corrupt_next_crc = 2
            panel.faults.drop_next_replies = 1
            detector.faults.exception_next = 2
            topic, health = await sub.wait_for(_faults_seen)
            assert gw.metrics is not None
            await gw.metrics.bound.wait()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{gw.metrics.port}/metrics") as response,
            ):
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                metrics = _samples(await response.text())
    validate_message(topic, health)
    panel_health = _device(health, "facp-1")
    assert panel_health["bus"] == "line"
    assert panel_health["requests"] > panel_health["timeouts"]
    assert panel_health["latency_p50_ms"] is not None
    assert panel_health["latency_p95_ms"] >= panel_health["latency_p50_ms"]
    assert health["link"]["up"] is True
    assert health["state_dir_free_bytes"] > 0
    panel_labels = frozenset({("device", "facp-1"), ("bus", "line"), ("unit", "1")})
    detector_labels = frozenset({("device", "sd-101"), ("bus", "line"), ("unit", "11")})
    assert metrics[("campus_edge_modbus_crc_errors_total", panel_labels)] == 2
    assert metrics[("campus_edge_modbus_timeouts_total", panel_labels)] >= 3
    assert metrics[("campus_edge_modbus_exceptions_total", detector_labels | {("code", "2")})] == 1
    assert metrics[("campus_edge_modbus_crc_errors_total", detector_labels)] == 0
    assert metrics[("campus_edge_link_up", frozenset())] == 1
    assert ("campus_edge_outbox_depth", frozenset()) in metrics
    assert metrics[("campus_edge_modbus_latency_p50_seconds", panel_labels)] > 0


@pytest.mark.parametrize("transport", ["tcp", "rtu-pty"])
async def test_health_counts_wrong_unit_and_cut_short_replies_as_malformed(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any, transport: str
) -> None:
    """A reply from another unit and one cut short reach health and the metrics as malformed, not as timeouts."""
    panel = FirePanelSim()
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        await bus.__aexit__(None, None, None)  # the gateway opens its own
        text = config_text(
            tmp_path / "state",
            broker.url,
            [{"id": "line", **endpoint, "timeout_ms": 300, "retries": 2}],
            [{"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
            mqtt_extra=HEALTH,
        )
        async with running_gateway(make_config(text)) as gw:
            boot_id = gw.identity.boot_id
            await sub.wait_for(lambda t, p: t == f"{PREFIX}/state/facp-1" and p["online"])
            panel.faults.wrong_unit_next = 1
            panel.faults.truncate_next = 1

            def malformed_seen(topic: str, payload: dict[str, Any]) -> bool:
                return (
                    topic == f"{PREFIX}/health"
                    and payload["boot_id"] == boot_id
                    and _device(payload, "facp-1")["malformed"] == 2
                )

            topic, health = await sub.wait_for(malformed_seen)
            assert gw.metrics is not None
            await gw.metrics.bound.wait()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{gw.metrics.port}/metrics") as response,
            ):
                metrics = _samples(await response.text())
    validate_message(topic, health)
    assert (_device(health, "facp-1")["timeouts"], _device(health, "facp-1")["crc_errors"]) == (0, 0)
    labels = frozenset({("device", "facp-1"), ("bus", "line"), ("unit", "1")})
    assert metrics[("campus_edge_modbus_malformed_total", labels)] == 2
    assert metrics[("campus_edge_modbus_timeouts_total", labels)] == 0


async def test_health_published_for_every_sample_validates(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A gateway without devices publishes health again and again, valid per the contract; no metrics endpoint."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/health")
    text = config_text(tmp_path / "state", broker.url, [], [], mqtt_extra="\n[health]\ninterval_s = 1\n")
    async with running_gateway(make_config(text)) as gw:
        assert gw.metrics is None
        boot_id = gw.identity.boot_id  # not the retained health an earlier gateway of this id left
        first = await sub.wait_for(lambda t, p: p["boot_id"] == boot_id)
        second = await sub.wait_for(lambda t, p: p["boot_id"] == boot_id and p["uptime_s"] > first[1]["uptime_s"])
    for topic, payload in (first, second):
        validate_message(topic, payload)
        assert payload["modbus"] == []
        assert payload["outbox"]["depth"] >= 0


async def test_health_task_restarts_reach_mqtt_and_metrics(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A control socket path taken by a directory: its task's restarts show in health and the metrics, the rest 0."""
    sock = tmp_path / "ctl"
    (sock / "left-here").mkdir(parents=True)  # the socket cannot be bound there: the control task fails
    sub = await subscriber_factory(broker.url, f"{PREFIX}/health")
    text = config_text(tmp_path / "state", broker.url, [], [], mqtt_extra=HEALTH)
    text = text.replace("[gateway]\n", f'[gateway]\ncontrol_socket = "{sock}"\n')
    async with running_gateway(make_config(text)) as gw:
        boot_id = gw.identity.boot_id
        topic, health = await sub.wait_for(  # the first sample may be taken before the metrics task starts
            lambda t, p: p["boot_id"] == boot_id and p["tasks"].get("control", 0) >= 1 and "metrics" in p["tasks"]
        )
        assert gw.metrics is not None
        await gw.metrics.bound.wait()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{gw.metrics.port}/metrics") as response,
        ):
            metrics = _samples(await response.text())
        restarts = gw.supervisor.restart_counts()
    validate_message(topic, health)
    assert set(health["tasks"]) == {"uplink", "alarms", "reports", "control", "health", "metrics"}
    assert {name: n for name, n in health["tasks"].items() if name != "control"} == dict.fromkeys(
        ["uplink", "alarms", "reports", "health", "metrics"], 0
    )
    assert metrics[("campus_edge_task_restarts_total", frozenset({("task", "control")}))] >= health["tasks"]["control"]
    assert metrics[("campus_edge_task_restarts_total", frozenset({("task", "control")}))] == restarts["control"]
    assert metrics[("campus_edge_task_restarts_total", frozenset({("task", "uplink")}))] == 0
    assert gw.supervisor.last_error["control"] == f"IsADirectoryError: [Errno 21] Is a directory: '{sock}'"


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.7", "gateway.local"])  # noqa: S104 (refused here)
def test_health_config_refuses_a_metrics_address_off_this_machine(tmp_path: Path, address: str) -> None:
    """A metrics endpoint anywhere but loopback is refused at load, naming the key and its line."""
    text = config_text(
        tmp_path,
        "mqtt://127.0.0.1:1883",
        [],
        [],
        mqtt_extra=f'\n[health]\nmetrics_port = 9108\nmetrics_address = "{address}"\n',
    )
    line = text.splitlines().index(f'metrics_address = "{address}"') + 1
    with pytest.raises(ConfigError) as caught:
        make_config(text)
    assert str(caught.value) == (
        f"test.toml:{line}: health.metrics_address: expected a loopback address (127.0.0.1, ::1 or localhost), "
        f"got '{address}': the metrics endpoint has no authentication and stays on this machine"
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.53"])
def test_health_config_takes_loopback_addresses(tmp_path: Path, address: str) -> None:
    """Loopback addresses, IPv4 and IPv6, are accepted."""
    text = config_text(
        tmp_path,
        "mqtt://127.0.0.1:1883",
        [],
        [],
        mqtt_extra=f'\n[health]\nmetrics_port = 9108\nmetrics_address = "{address}"\n',
    )
    assert make_config(text).health.metrics_address == address


def test_health_cpu_temperature_from_thermal_zones(tmp_path: Path) -> None:
    """The zone typed cpu is read in °C; a board without thermal zones has no temperature."""
    assert cpu_temperature_c(tmp_path / "absent") is None
    for name, kind, millidegrees in (
        ("thermal_zone0", "gpu-thermal", "40000"),
        ("thermal_zone1", "cpu-thermal", "51634"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "temp").write_text(millidegrees + "\n")
    assert cpu_temperature_c(tmp_path) == 51.6
