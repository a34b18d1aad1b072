"""Overload is told: the share of each bus's polls made on time, in health and metrics, and one `trouble` warning
while a bus falls behind its schedule; a gateway against simulated devices over real TCP."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.base.clock import Clock
from gateway.field.polling import Punctuality, on_time_s
from gateway.store.records import Event
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim, SimDevice, SmokeDetectorSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"
HEALTH = "\n[health]\ninterval_s = 1\nmetrics_port = 0\n"


def _behind(value: bool) -> Any:
    return lambda t, p: t == f"{PREFIX}/event/trouble" and p["point"] == "polls_behind" and p["value"] is value


def _polling(predicate: Any, boot_id: str) -> Any:
    """A health message of this gateway run (the broker is shared: an earlier test's health is retained) whose bus
    `line` satisfies `predicate`."""

    def check(topic: str, payload: dict[str, Any]) -> bool:
        if topic != f"{PREFIX}/health" or payload["boot_id"] != boot_id:
            return False
        line = next(p for p in payload.get("polling", []) if p["bus"] == "line")
        return bool(predicate(line))

    return check


async def _site(
    tmp_path: Path, broker: PrivateBroker, stack: Any, devices: dict[int, SimDevice], intervals: dict[int, float]
) -> str:
    bus, endpoint = await open_sim_bus("tcp", devices, tmp_path, stack)
    await bus.__aexit__(None, None, None)  # the gateway opens its own
    return config_text(
        tmp_path / "state", broker.url, [{"id": "line", **endpoint, "timeout_ms": 2000, "retries": 0}],
        [{"id": f"pd-{u}", "bus": "line", "unit": u, "profile": devices[u].model, "poll_interval_s": s}
         for u, s in intervals.items()],
        mqtt_extra=HEALTH,
    ) + "\n[alarms]\nbus_window_s = 1\n"  # fmt: skip


def _verdict(watch: Punctuality) -> tuple[float | None, float | None, bool]:
    return watch.share, watch.late_mean_s, watch.behind


def test_polling_on_time_means_within_10_ms_or_a_tenth_of_the_interval() -> None:
    """A poll is on time when it starts within max(10 ms, 10 % of its interval) of its slot. A window with less than
    90 % of its polls on time raises the warning with the share and the mean lateness of the late polls."""
    assert [on_time_s(i) for i in (0.05, 0.1, 1.0, 60.0)] == pytest.approx([0.010, 0.010, 0.1, 6.0])
    events: list[Event] = []
    watch = Punctuality("line", 10.0, Clock(assume_synced=True), events.append)
    watch.polled(0.0, 0.0, 0.010)  # opens the window
    watch.polled(0.0, 0.010, 0.010)
    watch.polled(0.0, 0.0125, 0.010)
    watch.polled(1.0, 1.0625, 0.1)
    watch.polled(2.0, 2.2475, 0.1)
    assert (watch.polls, watch.on_time, watch.share, events) == (5, 3, None, [])
    watch.polled(10.0, 10.0, 0.010)  # judges the five polls before it, and counts itself in the next window
    assert watch.share == 0.6
    assert watch.late_mean_s is not None
    assert round(watch.late_mean_s * 1000, 3) == 130.0
    assert watch.behind
    [event] = events
    assert (event.cls, event.severity, event.state, event.device, event.point, event.value) == (
        "trouble", "warning", "raised", "line", "polls_behind", True,
    )  # fmt: skip
    assert event.detail["text_en"] == "polls of bus line behind schedule: 60% on time, typically 130 ms late"
    assert event.detail["text_zh"] == "总线 line 轮询落后于计划: 按时轮询 60%, 一般延迟 130 毫秒"
    assert (event.detail["on_time_share"], event.detail["late_mean_ms"], event.detail["polls"]) == (0.6, 130.0, 5)
    watch.polled(20.0, 20.001, 0.010)  # judges the window of the one poll at 10 s, on time: 100 %, cleared
    assert _verdict(watch) == (1.0, None, False)
    assert events[-1].state == "cleared"
    assert events[-1].detail["text_en"] == "polls of bus line on schedule again: 100% on time"
    assert events[-1].detail["text_zh"] == "总线 line 轮询已恢复按计划进行: 按时轮询 100%"


async def test_polling_a_bus_that_cannot_keep_up_is_told_once_until_it_catches_up(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """Three detectors every 100 ms answer promptly, then each takes 100 ms per reply: the bus cannot keep up, one
    trouble warning names it with the share on time and the typical lateness, health shows the share below 1; when
    the replies are prompt again the warning clears, and it was raised once."""
    devices: dict[int, SimDevice] = {u: SmokeDetectorSim() for u in (1, 2, 3)}
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        text = await _site(tmp_path, broker, stack, devices, dict.fromkeys(devices, 0.1))
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: all(gw.board.devices[f"pd-{u}"].online for u in devices))
            for dev in devices.values():
                dev.faults.stall_s = 0.1
            _, raised = await sub.wait_for(_behind(True))
            assert (raised["device"], raised["severity"], raised["state"]) == ("line", "warning", "raised")
            detail = raised["detail"]
            assert detail["on_time_share"] < 0.9
            assert detail["late_mean_ms"] > 0
            assert detail["window_s"] == 1
            share, late_ms = f"{detail['on_time_share']:.0%}", round(detail["late_mean_ms"])
            assert (
                detail["text_en"] == f"polls of bus line behind schedule: {share} on time, typically {late_ms} ms late"
            )
            assert detail["text_zh"] == f"总线 line 轮询落后于计划: 按时轮询 {share}, 一般延迟 {late_ms} 毫秒"
            _, health = await sub.wait_for(_polling(lambda p: p["behind"], gw.identity.boot_id))
            [line] = health["polling"]
            assert line["on_time_share"] < 1
            assert line["on_time"] < line["polls"]
            for dev in devices.values():
                dev.faults.stall_s = 0.0
            _, cleared = await sub.wait_for(_behind(False))
            assert cleared["state"] == "cleared"
            assert cleared["detail"]["on_time_share"] >= 0.98
            assert cleared["detail"]["text_en"] == (
                f"polls of bus line on schedule again: {cleared['detail']['on_time_share']:.0%} on time"
            )
            await sub.wait_for(_polling(lambda p: not p["behind"], gw.identity.boot_id))
    assert len([p for t, p in sub.messages if _behind(True)(t, p)]) == 1, "one warning for the whole spell"
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_polling_an_overloaded_bus_still_polls_every_device(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """A fire panel (polled first when due with others) and three detectors at different intervals, each reply
    taking 50 ms: far more than the bus can do, and every device still gets its turn, none starves."""
    devices: dict[int, SimDevice] = {
        1: FirePanelSim(),
        2: SmokeDetectorSim(),
        3: SmokeDetectorSim(),
        4: SmokeDetectorSim(),
    }
    for dev in devices.values():
        dev.faults.stall_s = 0.05
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        text = await _site(tmp_path, broker, stack, devices, {1: 0.05, 2: 0.05, 3: 0.1, 4: 0.2})
        async with running_gateway(make_config(text)) as gw:
            await sub.wait_for(_behind(True))
            entries = gw.pollers["line"].devices
            before = [e.polls for e in entries]
            signal = watch_gateway(gw)
            await signal.until(lambda: min(e.polls - b for e, b in zip(entries, before, strict=True)) >= 10)
            made = [e.polls - b for e, b in zip(entries, before, strict=True)]
            assert max(made) <= 2 * min(made), f"polls per device while overloaded: {made}"


async def test_polling_a_bus_that_keeps_up_shows_every_poll_on_time(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """Two detectors every 500 ms on a prompt bus: health and metrics show a share of 1.0, and no warning."""
    devices: dict[int, SimDevice] = {1: SmokeDetectorSim(), 2: SmokeDetectorSim()}
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        text = await _site(tmp_path, broker, stack, devices, dict.fromkeys(devices, 0.5))
        async with running_gateway(make_config(text)) as gw:
            _, health = await sub.wait_for(_polling(lambda p: p["on_time_share"] is not None, gw.identity.boot_id))
            [line] = health["polling"]
            assert (line["on_time_share"], line["late_mean_ms"], line["behind"]) == (1.0, None, False)
            assert line["polls"] == line["on_time"] > 0
            await sub.wait_for(
                _polling(lambda p: p["polls"] > line["polls"] + 4, gw.identity.boot_id)
            )  # more windows judged
            assert gw.metrics is not None
            await gw.metrics.bound.wait()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{gw.metrics.port}/metrics") as response,
            ):
                metrics = {
                    s.name: s.value
                    for family in text_string_to_metric_families(await response.text())
                    for s in family.samples
                    if s.labels.get("bus") == "line"
                }
    assert metrics["campus_edge_polls_on_time_share"] == 1.0
    assert metrics["campus_edge_polls_total"] == metrics["campus_edge_polls_on_time_total"] > 0
    assert metrics["campus_edge_polls_behind"] == 0
    assert "campus_edge_polls_late_mean_seconds" not in metrics
    assert not [p for t, p in sub.messages if t == f"{PREFIX}/event/trouble"]
    for topic, payload in sub.messages:
        validate_message(topic, payload)
