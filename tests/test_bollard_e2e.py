"""A lane in a running gateway: a vehicle blocks a raise, the raise goes through once the loop clears, a fire on
the panel lowers the fire lane and holds it; each decision reaches the platform with its rule and reasons."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import Inhibit, raise_inhibits
from gateway.safety.bollards.supervisor import Command, Rule
from gateway.uplink.contract_check import validate_message
from simulators.bollard import BollardSim, BollardState
from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway

PREFIX = "campus/v1/test-school/gw-1"
LANE = (
    '\n[[lanes]]\nid = "lane-east"\ncontroller = "bollard-east"\npower_loss = "auto_lower"\n'
    "fire_lane = true\nloop_clear_delay_s = 0.3\n"
)


def panel_and_lane(tmp_path: Path, broker_url: str, endpoint: dict[str, Any]) -> str:
    """A fire panel (unit 1) and a fire lane's controller (unit 2) on one simulated bus."""
    return (
        config_text(
            tmp_path / "state",
            broker_url,
            [{"id": "gate", **endpoint}],
            [
                {"id": "facp-1", "bus": "gate", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1},
                {
                    "id": "bollard-east",
                    "bus": "gate",
                    "unit": 2,
                    "profile": "bollard_controller",
                    "poll_interval_s": 0.1,
                },
            ],
        )
        + LANE
    )


def decision(key: str, value: str) -> Any:
    """A supervisor's decision event with detail[key] == value (the controller's own state events have none)."""

    def match(topic: str, p: dict[str, Any]) -> bool:
        return topic == f"{PREFIX}/event/bollard" and p.get("detail", {}).get(key) == value

    return match


async def test_bollard_lane_end_to_end(tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any) -> None:
    panel = FirePanelSim()
    sim = BollardSim(rise_s=0.5, lower_s=0.4)
    sim.holding[102] = 200  # pre-warning 0.2 s, to keep the test short
    sim.holding[103] = 300  # the controller's own loop clear delay, as the lane's below
    sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel, 2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = panel_and_lane(tmp_path, broker.url, endpoint)
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            lane = gw.bollards.supervisors["lane-east"]
            sim.set_input("loop_a_occupied", True)
            await signal.until(lambda: lane.sensors.view(False).loop_occupied is True)

            refused = gw.bollards.request("lane-east", Command.RAISE, Authority.GUARD)
            assert (refused.accepted, refused.rule) == (False, Rule.INTERLOCK)
            _, event = await sub.wait_for(decision("rule", "interlock"))
            assert event["detail"]["reasons"] == "loop_occupied"
            assert "地感线圈有车" in event["detail"]["text_zh"]
            assert event["severity"] == "warning"
            assert sim.state is BollardState.DOWN

            sim.set_input("loop_a_occupied", False)
            await signal.until(lambda: raise_inhibits(lane.sensors.view(False), gw.clock.mono(),
                                                      lane.settings.interlocks) == [])  # fmt: skip
            assert gw.bollards.request("lane-east", Command.RAISE, Authority.PLATFORM).accepted
            await signal.until(lambda: sim.state is BollardState.UP, 10)

            panel.alarm_point(5)
            await sub.wait_for(
                lambda t, p: t == f"{PREFIX}/event/bollard" and p.get("detail", {}).get("source") == "fire"
            )
            await signal.until(lambda: sim.state is BollardState.DOWN, 10)
            held = gw.bollards.request("lane-east", Command.RAISE, Authority.GUARD)
            assert held.rule is Rule.FIRE_HOLD_DOWN
            await sub.wait_for(decision("rule", "fire_hold_down"))
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_bollard_raise_that_waited_for_the_bus_is_never_sent_late(tmp_path: Path) -> None:
    """A raise stuck behind a stalled device on the same line is dropped, not written when the line frees."""
    from drivers.modbus import ModbusBus, RequestPolicy  # noqa: PLC0415
    from gateway.base.clock import Clock  # noqa: PLC0415
    from gateway.safety.bollards.service import ModbusActuator  # noqa: PLC0415

    sim = BollardSim()
    stalled = FirePanelSim()
    stalled.faults.stall_s = 1.5
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus("tcp", {1: stalled, 2: sim}, tmp_path, stack)
        assert isinstance(bus, ModbusBus)
        actuator = ModbusActuator("lane-east", bus, 2, 0.3, Clock())
        failed: list[str] = []
        actuator.on_failed = failed.append
        writer = asyncio.create_task(actuator.run())
        try:
            read = asyncio.create_task(bus.read(1, 4, 0, 18, RequestPolicy(3.0, 0)))
            await asyncio.sleep(0.05)  # the stalled read holds the line
            actuator.send("cmd_raise")
            await read
            assert actuator.failures + actuator.dropped == 1
            assert failed == ["cmd_raise"], "the supervisor is told"
            before = sim.requests
            actuator.send("cmd_stop")  # the safe direction still goes out
            async with asyncio.timeout(5):
                while sim.requests == before:  # noqa: ASYNC110 - the simulator has no event to wait on
                    await asyncio.sleep(0.05)
        finally:
            writer.cancel()
    # Had the raise arrived the bollard would be RISING, and the stop would have left it STOPPED_MID.
    assert sim.state is BollardState.DOWN


async def test_bollard_controller_settings_checked_against_the_lane(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """R18: the lane says its hardware lowers without power; the controller says it stays up. Reported at start
    with both values, and cleared once the controller agrees; a short pre-warning is reported too (R13)."""
    sim = BollardSim()
    sim.holding[107] = 0  # stays up without power
    sim.holding[102] = 500  # warns half a second: less than the lane's 1 s
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/bollard")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = (
            config_text(
                tmp_path / "state",
                broker.url,
                [{"id": "gate", **endpoint}],
                [{"id": "bollard-east", "bus": "gate", "unit": 2, "profile": "bollard_controller"}],
            )
            + LANE
        )
        async with running_gateway(make_config(text)) as gw:
            _, first = await sub.wait_for(lambda _t, p: p.get("point") == "settings")
            assert (first["state"], first["severity"], first["value"]) == (
                "raised",
                "warning",
                "power_loss,pre_warn_ms",
            )
            assert first["detail"]["power_loss_configured"] == "auto_lower"
            assert first["detail"]["power_loss_controller"] == "stay"
            assert "500 ms" in first["detail"]["findings"]
            sim.holding[107] = 1
            sim.holding[102] = 1000
            assert await gw.bollards.check_settings("lane-east") == {}
            _, cleared = await sub.wait_for(lambda _t, p: p.get("point") == "settings" and p["state"] == "cleared")
            assert cleared["value"] == "ok"
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_bollard_fire_hold_needs_the_panel_reset_and_the_guard(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """R2, R17: a panel that drops its fire bit without a reset leaves the fire standing (reported as
    inconsistent); the guard cannot release the fire lane until the panel is reset, and then only the guard can."""
    panel = FirePanelSim()
    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[107] = 1
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/#")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel, 2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = panel_and_lane(tmp_path, broker.url, endpoint)
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            panel.alarm_point(7)
            await signal.until(lambda: gw.bollards.fire)
            panel.clear_point(7)
            panel.state.fire = False  # the fire bit drops, no reset: a panel that misbehaves
            _, event = await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/fire" and p["point"] == "inconsistent")
            assert event["device"] == "facp-1"
            assert gw.bollards.fire, "the fire stands until the panel is reset"
            early = gw.bollards.request("lane-east", Command.RELEASE_FIRE_HOLD, Authority.GUARD)
            assert early.rule is Rule.FIRE_NOT_RESET

            assert panel.reset()
            await signal.until(lambda: not gw.bollards.fire)
            assert gw.bollards.supervisors["lane-east"].fire_hold, "the reset alone does not release the lane"
            platform = gw.bollards.request("lane-east", Command.RELEASE_FIRE_HOLD, Authority.PLATFORM)
            assert platform.rule is Rule.NOT_LOCAL
            released = gw.bollards.request("lane-east", Command.RELEASE_FIRE_HOLD, Authority.GUARD)
            assert released.accepted
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_bollard_fire_stands_across_a_restart_until_the_panel_is_reset(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """R2, R17: the panel drops its fire bit without a reset and the gateway restarts: the fire still stands, and
    the fire lane cannot be released. The panel's reset, seen by its first-alarm point clearing (this panel's
    reset bit is too short to see), ends the fire and clears the inconsistency."""
    panel = FirePanelSim()
    panel.shows_reset_bit = False
    sim = BollardSim(rise_s=0.3, lower_s=0.3)
    sim.holding[107] = 1
    sub = await subscriber_factory(broker.url, f"{PREFIX}/event/fire")
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {1: panel, 2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = panel_and_lane(tmp_path, broker.url, endpoint)
        async with running_gateway(make_config(text)) as gw:
            signal = watch_gateway(gw)
            panel.alarm_point(3)
            await signal.until(lambda: gw.bollards.fire)
            panel.clear_point(3)
            panel.state.fire = False  # no reset
            await sub.wait_for(lambda _t, p: p["point"] == "inconsistent" and p["state"] == "raised")
        async with running_gateway(make_config(text)) as gw:
            assert gw.bollards.fire, "restored: the panel was never reset"
            signal = watch_gateway(gw)
            await signal.until(lambda: gw.bollards.supervisors["lane-east"].sensors.view(False).state == "down")
            early = gw.bollards.request("lane-east", Command.RELEASE_FIRE_HOLD, Authority.GUARD)
            assert early.rule is Rule.FIRE_NOT_RESET
            panel.state.fire = True  # the reset below needs the latched fire the panel still owes
            assert panel.reset()
            await signal.until(lambda: not gw.bollards.fire)
            await sub.wait_for(lambda _t, p: p["point"] == "inconsistent" and p["state"] == "cleared")
            assert gw.bollards.request("lane-east", Command.RELEASE_FIRE_HOLD, Authority.GUARD).accepted
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_bollard_the_controllers_longer_loop_clear_delay_is_the_lanes(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    """The lane waits 0.3 s after its loop clears, the controller 2 s: once the settings are read, a raise 0.5 s
    after the van left is refused by the gateway with "the loop cleared less than the clear delay ago" (instead of
    accepted, then refused by the controller), and goes through once the controller's delay has passed too."""
    sim = BollardSim()
    sim.holding[103] = 2000
    async with contextlib.AsyncExitStack() as stack:
        bus, endpoint = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        await bus.__aexit__(None, None, None)
        text = config_text(
            tmp_path / "state", broker.url, [{"id": "gate", **endpoint}],
            [{"id": "bollard-east", "bus": "gate", "unit": 2, "profile": "bollard_controller",
              "poll_interval_s": 0.1}],
        ) + LANE  # fmt: skip
        async with running_gateway(make_config(text)) as gw:
            await gw.bollards.check_settings("lane-east")
            lane = gw.bollards.supervisors["lane-east"]
            assert lane.settings.interlocks.loop_clear_delay_s == 2.0
            signal = watch_gateway(gw)
            sim.set_input("loop_a_occupied", True)
            await signal.until(lambda: lane.sensors.view(False).loop_occupied is True)
            sim.set_input("loop_a_occupied", False)
            await signal.until(lambda: lane.sensors.view(False).loop_occupied is False)
            await asyncio.sleep(0.5)
            early = gw.bollards.request("lane-east", Command.RAISE, Authority.GUARD)
            assert (early.accepted, early.reasons) == (False, (Inhibit.LOOP_CLEARING,))
            await asyncio.sleep(1.8)
            late = gw.bollards.request("lane-east", Command.RAISE, Authority.GUARD)
            assert late.accepted, late.text()
            await signal.until(lambda: sim.state is BollardState.UP)
