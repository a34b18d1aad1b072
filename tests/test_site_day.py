"""A school day on a simulated site, over MQTT, with the gateway restarted in the middle (issue 6, point 6): the
alarms open at the restart are neither lost nor raised again, and the next morning's daily report, generated on an
injected clock, adds up to what the simulated devices did across both runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.base.clock import Clock
from gateway.uplink.contract_check import validate_message
from simulators.broker import PrivateBroker
from simulators.contacts import SimContact, contact_pin_factory
from simulators.devices import FirePanelSim, SmokeDetectorSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"
SHANGHAI = ZoneInfo("Asia/Shanghai")


class ShiftedClock(Clock):
    """Real time moved to the school day the test plays, and on to the next morning when the test says."""

    def __init__(self, start: datetime) -> None:
        super().__init__(assume_synced=True)
        self.offset_ms = int(start.timestamp() * 1000) - time.time_ns() // 1_000_000

    def wall_ms(self) -> int:  # type: ignore[override]  # an instance's time, not the class's
        return time.time_ns() // 1_000_000 + self.offset_ms

    def jump_to(self, when: datetime) -> None:
        self.offset_ms = int(when.timestamp() * 1000) - time.time_ns() // 1_000_000


def _alarm(aid: str, what: str) -> Any:
    return lambda t, p: t.endswith("/event/alarm") and p["detail"]["alarm_id"] == aid and p["value"] == what


async def test_site_day_restart_keeps_alarms_and_the_daily_report_adds_up(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    panel, smoke1, smoke2 = FirePanelSim(), SmokeDetectorSim(), SmokeDetectorSim()
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    clock = ShiftedClock(datetime(2026, 3, 3, 10, 0, tzinfo=SHANGHAI))  # a Tuesday
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel, 2: smoke1, 3: smoke2}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state", broker.url, [{"id": "line", **endpoint}],
            [{"id": "facp-1", "bus": "line", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1},
             {"id": "smoke-1", "bus": "line", "unit": 2, "profile": "smoke_detector", "poll_interval_s": 0.1},
             {"id": "smoke-2", "bus": "line", "unit": 3, "profile": "smoke_detector", "poll_interval_s": 0.1,
              "offline_after_s": 0.5, "backoff_max_s": 0.3, "timeout_ms": 300}],
            [{"id": "door-main", "pin": 17, "kind": "door", "contact": "NC", "debounce_ms": 10, "armed": "never"}],
        )  # fmt: skip
        cfg = make_config(text)
        factory = contact_pin_factory()
        door = SimContact(factory, 17, "NC")

        async with running_gateway(cfg, factory, clock, report_check_s=0.2) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: all(gw.board.devices[d].online for d in ("facp-1", "smoke-1", "smoke-2")))
            for open_s in (0.3, 1.2):  # two visits through the main door, the second held a little longer
                door.set(True)
                await asyncio.sleep(open_s)
                door.set(False)
                await asyncio.sleep(0.1)
            smoke2.faults.silent = True  # a detector drops off the bus ...
            await sub.wait_for(_alarm("smoke-2.offline", "raised"))
            smoke2.faults.silent = False  # ... and comes back
            await signal.until(lambda: gw.board.devices["smoke-2"].online)
            smoke1.set(low_battery=True)
            await sub.wait_for(_alarm("smoke-1.low_battery", "raised"))
            panel.alarm_point(7)
            await sub.wait_for(_alarm("facp-1.fire", "raised"))
            panel.clear_point(7)
            before = {a.id: (a.active, a.acked) for a in gw.alarms.alarms.values()}
        assert before["facp-1.fire"] == (True, False)
        assert before["smoke-1.low_battery"] == (True, False)
        assert before["smoke-2.offline"] == (False, False), "back online, waiting for its acknowledgement"
        still_active = {aid for aid, (active, _acked) in before.items() if active}

        def raises() -> list[str]:
            # By seq: delivery is at least once, and a message sent just before the stop may come again after it.
            alarms = {p["seq"]: p for t, p in sub.messages if t.endswith("/event/alarm")}
            return [p["detail"]["alarm_id"] for _seq, p in sorted(alarms.items()) if p["value"] == "raised"]

        raised_before = [aid for aid in raises() if aid in still_active]

        # The gateway restarts with a fire and a low battery open; the panel has not been reset.
        async with running_gateway(make_config(text), factory, clock, report_check_s=0.2) as gw:
            signal = watch_gateway(gw)
            await signal.until(lambda: all(gw.board.devices[d].online for d in ("facp-1", "smoke-1", "smoke-2")))
            after = {a.id: (a.active, a.acked) for a in gw.alarms.alarms.values()}
            assert after == before, "rebuilt from the store: none lost"
            late = await subscriber_factory(broker.url, f"{PREFIX}/alarms")
            _, listed = await late.wait_for(lambda _t, p: True)
            assert {a["alarm_id"] for a in listed["alarms"]} == set(before), "retained for a late platform"
            assert gw.alarms.alarms["facp-1.fire"].active, "still latched: the panel was not reset"
            ok, _ = gw.alarms.ack("facp-1.fire", "wang", "guard")
            assert ok
            await sub.wait_for(_alarm("facp-1.fire", "acknowledged"))
            assert panel.reset()
            await sub.wait_for(_alarm("facp-1.fire", "closed"))
            door.set(True)  # a third visit
            await asyncio.sleep(0.2)
            door.set(False)

            def closed_thrice(_t: str, _p: dict[str, Any]) -> bool:
                return [p["value"] for t, p in sub.messages if t.endswith("/event/door")].count(False) == 3

            await sub.wait_for(closed_thrice)

            clock.jump_to(datetime(2026, 3, 4, 7, 0, 1, tzinfo=SHANGHAI))  # the next morning, 07:00
            _, report = await sub.wait_for(lambda t, p: t == f"{PREFIX}/report/daily")
        # (smoke-2, cleared before the restart, may go offline again on a loaded machine: that would be a new raise)
        assert [aid for aid in raises() if aid in still_active] == raised_before, "nothing raised again by the restart"

    assert report["from"].startswith("2026-03-03T02:00")  # 10:00 in Shanghai
    assert report["history_from"] == report["from"], "the morning's counts survived the restart"
    assert len(report["gateway_starts"]) == 2
    assert report["doors"]["opened"] == {"door-main": 3}
    assert 1.0 <= report["doors"]["longest_open_s"]["door-main"] < 3.0
    assert report["devices"]["went_offline"] == {"smoke-2": 1}
    assert report["devices"]["offline_now"] == []
    assert report["alarms_raised"] == {"fire": 1, "maintenance": 2}
    assert report["open_alarms"] == []
    assert [w["alarm_id"] for w in report["open_warnings"]] == ["smoke-2.offline", "smoke-1.low_battery"]
    assert "网关重启" in report["readable"]["zh-CN"]
    assert "smoke-1.low_battery" in report["readable"]["en"]
    for topic, payload in sub.messages:
        validate_message(topic, payload)
