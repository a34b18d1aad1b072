"""R24, "bus overloaded": the load a configuration puts on an RS-485 line, estimated from devices.md section 5, and
the warning the gateway raises from what polling really takes, over MQTT against a simulated line at 9600 baud with
wire timing."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus import rtu_read_s
from drivers.profile import load_profile
from gateway.config import RtuBusConfig
from gateway.field.bus_load import estimate
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.devices import SimDevice, SmokeDetectorSim
from simulators.modbus_server import SimServer
from simulators.pty import PtyPair
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"
ALARM_ID = "rs485.bus_overloaded"


@pytest.mark.parametrize(
    ("baud", "expected_ms"),
    [
        (9600, (25, 46, 96, 170, 309)),
        (19200, (13, 23, 48, 85, 155)),
        (38400, (8, 13, 26, 44, 79)),
        (115200, (5, 7, 11, 17, 29)),
    ],
)
def test_bus_load_transaction_times_match_the_section_5_table(baud: int, expected_ms: tuple[int, ...]) -> None:
    """FC03 of N registers, 11-bit characters: the table in devices.md section 5, to the millisecond."""
    got = tuple(round(rtu_read_s(3, n, baud, 11) * 1000) for n in (1, 10, 32, 64, 125))
    assert got == expected_ms


def _bus(**extra: Any) -> RtuBusConfig:
    return RtuBusConfig.model_validate({"id": "rs485", "type": "rtu", "port": "/dev/ttyUSB0", **extra})


def test_bus_load_estimate_of_a_line() -> None:
    """Five detectors polled every second take a third of a 9600-baud line; every 100 ms, more than all of it;
    parity adds a bit to every character, and the devices' answer time counts."""
    smoke = load_profile("smoke_detector")
    relaxed = estimate(_bus(), [(f"s{i}", smoke, 1.0) for i in range(5)])
    assert relaxed.load == pytest.approx(5 * (rtu_read_s(4, 11, 9600, 10) + 0.020), rel=1e-6)
    assert 0.3 < relaxed.load < 0.35
    assert not relaxed.overloaded
    tight = estimate(_bus(), [(f"s{i}", smoke, 0.1) for i in range(5)])
    assert tight.overloaded
    assert "s0 64 ms every 0.1 s" in tight.summary()
    assert estimate(_bus(parity="E"), [("s", smoke, 1.0)]).bits_per_char == 11
    assert estimate(_bus(reply_latency_ms=200), [("s", smoke, 1.0)]).load > 0.2
    fast = estimate(_bus(baud=115200, reply_latency_ms=0), [(f"s{i}", smoke, 0.1) for i in range(5)])
    assert fast.load < 0.5, "the same polling on a fast line with prompt devices"


def _site(tmp_path: Path, broker: PrivateBroker, port: Path, interval_s: float, window_s: float) -> str:
    sock = Path(f"/tmp/ce-busload-{tmp_path.name[-12:]}.sock")
    return config_text(
        tmp_path / "state", broker.url,
        [{"id": "rs485", "type": "rtu", "port": str(port), "baud": 9600}],
        [{"id": f"smoke-{u}", "bus": "rs485", "unit": u, "profile": "smoke_detector", "poll_interval_s": interval_s}
         for u in (1, 2)],
    ).replace("[gateway]\n", f'[gateway]\ncontrol_socket = "{sock}"\n') + (
        f"\n[alarms]\nbus_window_s = {window_s}\nchatter_s = 1\n"
    )  # fmt: skip


def _lifecycle(what: str) -> Any:
    return lambda t, p: t.endswith("/event/alarm") and p["detail"]["alarm_id"] == ALARM_ID and p["value"] == what


async def test_bus_load_a_slow_device_overloads_the_line_until_it_answers_in_time(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """Two detectors every 200 ms fit a 9600-baud line (about two thirds of it); when one starts taking 300 ms to
    answer, neither is read as often as configured and the bus is busy all the time: one maintenance warning
    naming the late devices. The guard acknowledges it; the device answers promptly again and the warning is
    restored and closed."""
    from tests.test_commands_e2e import cli  # noqa: PLC0415

    slow = SmokeDetectorSim()
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        pair = await stack.enter_async_context(PtyPair(tmp_path / "gw-end", tmp_path / "dev-end"))
        devices: dict[int, SimDevice] = {1: SmokeDetectorSim(), 2: slow}
        await stack.enter_async_context(SimServer.rtu(devices, str(pair.device_end), 9600, line_timing=True))
        cfg = make_config(_site(tmp_path, broker, pair.gateway_end, 0.2, 1.5))
        async with running_gateway(cfg) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: all(gw.board.devices[f"smoke-{u}"].online for u in (1, 2)))
            slow.faults.stall_s = 0.3
            _, raised = await sub.wait_for(_lifecycle("raised"))
            assert (raised["device"], raised["point"]) == ("rs485", "bus_overloaded")
            assert raised["detail"]["class"] == "maintenance"
            _, warning = await sub.wait_for(lambda t, p: t.endswith("/event/maintenance") and p["value"] is True)
            assert warning["detail"]["source"] == "measured"
            assert warning["detail"]["busy"] >= 0.8
            assert "smoke-2 0.2 s -> " in warning["detail"]["late_devices"]
            code, out = await cli("alarm", "ack", ALARM_ID, "--by", "wang", "--socket", str(cfg.gateway.control_socket))
            assert code == 0, out
            await sub.wait_for(_lifecycle("acknowledged"))
            slow.faults.stall_s = 0.0
            await sub.wait_for(_lifecycle("cleared"))
            await sub.wait_for(_lifecycle("closed"))
    raises = [p for t, p in sub.messages if _lifecycle("raised")(t, p)]
    assert len(raises) == 1, "one warning for the whole spell"
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_bus_load_an_overloading_configuration_is_reported_at_start_and_a_restart_clears_it(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """Polling two detectors every 50 ms needs more than the line has: the gateway says so at start (computed,
    before a single poll), and the measurement agrees without raising it twice. Restarted with a relaxed interval,
    the gateway finds the warning still open from before and clears it once a window shows the line keeps up."""
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        pair = await stack.enter_async_context(PtyPair(tmp_path / "gw-end", tmp_path / "dev-end"))
        devices: dict[int, SimDevice] = {1: SmokeDetectorSim(), 2: SmokeDetectorSim()}
        await stack.enter_async_context(SimServer.rtu(devices, str(pair.device_end), 9600, line_timing=True))
        async with running_gateway(make_config(_site(tmp_path, broker, pair.gateway_end, 0.05, 1.0))) as gw:
            _, computed = await sub.wait_for(lambda t, p: t.endswith("/event/maintenance") and p["value"] is True)
            assert computed["detail"]["source"] == "computed"
            assert computed["detail"]["estimated_load"] > 2
            await sub.wait_for(_lifecycle("raised"))
            polls = watch_gateway(gw)
            started = gw.clock.mono()
            await polls.until(lambda: gw.clock.mono() - started > 2.5)  # two windows judged
            load = gw.pollers["rs485"].load
            assert load is not None
            assert load.overloaded
        async with running_gateway(make_config(_site(tmp_path, broker, pair.gateway_end, 1.0, 1.0))) as gw:
            assert gw.alarms.alarms[ALARM_ID].active, "rebuilt from the book"
            _, cleared = await sub.wait_for(lambda t, p: t.endswith("/event/maintenance") and p["value"] is False)
            assert cleared["detail"]["source"] == "measured"
            await sub.wait_for(_lifecycle("cleared"))
    assert len([p for t, p in sub.messages if _lifecycle("raised")(t, p)]) == 1
    for topic, payload in sub.messages:
        validate_message(topic, payload)
