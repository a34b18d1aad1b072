"""A dry-contact lane (GPIO relays and contacts, gpiozero's mock pins) under the supervisor, against the simulated
controller wired to the same pins: the gateway's own pre-warning (R13), state from the limit switches, R12-R15."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.dry_contact import DryContactController, InputPin
from gateway.safety.authority import Authority
from gateway.safety.bollards.dry_contact import DryContactLane, DryContactTiming
from gateway.safety.bollards.interlocks import Inhibit
from gateway.safety.bollards.supervisor import Command, Decision, LaneSettings, LaneSupervisor, Rule
from gateway.uplink.contract_check import validate_message
from simulators.bollard import BollardSim, BollardState
from simulators.broker import PrivateBroker
from simulators.dry_contact import DryContactRig
from tests.gateway_harness import config_text, make_config, running_gateway

RELAYS: dict[str, int | str] = {"raise": 5, "lower": 6, "stop": 13, "warning": 19}
CONTACTS: dict[str, tuple[int, Literal["NC", "NO"]]] = {
    "limit_up": (20, "NO"),
    "limit_down": (21, "NO"),
    "loop_a_occupied": (16, "NC"),
    "photocell_blocked": (12, "NC"),
    "pressure_edge_active": (26, "NC"),
}
STEP_S = 0.05
TIMING = DryContactTiming(pre_warn_s=1.0, pulse_s=0.5, poll_s=STEP_S)


class DryLane:
    """Gateway side and controller side on one mock pin factory and one injected clock."""

    def __init__(self, active_high: bool = True, wire: dict[str, tuple[int, Literal["NC", "NO"]]] | None = None):
        self.now = 100.0
        self.factory = MockFactory()
        self.sim = BollardSim(clock=lambda: self.now, rise_s=3.0, lower_s=2.5)
        wired = CONTACTS if wire is None else wire
        self.controller = DryContactController(
            "lane-west",
            RELAYS,
            {name: InputPin(pin, contact) for name, (pin, contact) in wired.items()},
            active_high=active_high,
            pin_factory=self.factory,
        )
        self.rig = DryContactRig(self.sim, self.factory, RELAYS, wired, active_high)
        self.lane = DryContactLane("lane-west", self.controller, TIMING, lambda: self.now)
        self.sup = LaneSupervisor("lane-west", LaneSettings(start_grace_s=3.5), self.lane)
        self.lane.on_status = self.sup.on_status
        self.log: list[Decision] = []
        self.sup.decisions.append(self.log.append)
        self.two_at_once = 0
        self.step()

    def step(self) -> None:
        self.rig.step()
        self.values = self.lane.step(self.now)
        closed = [r for r in ("raise", "lower", "stop") if self.rig.relay_on(r)]
        self.two_at_once += len(closed) > 1

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += STEP_S
            self.step()

    def sim_state(self) -> BollardState:
        return self.sim.state

    def state(self) -> str:
        """The state the lane last reported (reading it again would feed the supervisor an extra status)."""
        return str(self.values["state"].value)


def test_dry_contact_raise_is_warned_by_the_gateway_then_rises() -> None:
    lane = DryLane()
    assert lane.state() == "down"
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted
    lane.run(0.5)
    assert lane.rig.relay_on("warning"), "warning first"
    assert not lane.rig.terminals, "no terminal yet"
    lane.run(5.0)
    assert lane.sim_state() is BollardState.UP
    assert lane.state() == "up"
    assert [t for _, t in lane.rig.terminals] == ["raise"]
    assert lane.rig.raise_warnings[0] is not None
    assert lane.rig.raise_warnings[0] >= TIMING.pre_warn_s
    assert not lane.rig.relay_on("warning"), "lights and buzzer off once up"
    assert not lane.rig.relay_on("raise"), "the raise relay was a pulse"
    assert lane.sup.request(Command.LOWER, Authority.GUARD, lane.now).accepted
    lane.run(0.1)
    assert lane.rig.relay_on("warning"), "the buzzer sounds while lowering"
    lane.run(4.0)
    assert lane.sim_state() is BollardState.DOWN
    assert lane.state() == "down"
    assert not lane.rig.relay_on("warning")
    assert lane.two_at_once == 0


def test_dry_contact_presence_during_the_pre_warning_means_no_raise() -> None:
    lane = DryLane()
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted
    lane.run(0.5)
    lane.sim.set_input("photocell_blocked", True)
    lane.run(3.0)
    assert "raise" not in [t for _, t in lane.rig.terminals]
    assert lane.sim_state() is BollardState.DOWN
    assert any(d.rule is Rule.PRESENCE_DURING_RISE for d in lane.log)
    assert not lane.rig.relay_on("warning")


def test_dry_contact_presence_right_at_the_end_of_the_pre_warning_is_caught_by_the_last_look() -> None:
    """Presence between the last status and the raise pulse: the lane looks once more and withholds the pulse."""
    lane = DryLane()
    lane.lane.on_status = None  # the supervisor gets no status during the pre-warning, as if its reads were slow
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted
    lane.run(0.9)
    lane.sim.set_input("loop_a_occupied", True)
    lane.rig.write_inputs()
    lane.run(0.3)
    assert lane.lane.withheld == 1
    assert "raise" not in [t for _, t in lane.rig.terminals]


def test_dry_contact_presence_during_rise_lowers_within_one_step() -> None:
    lane = DryLane()
    lane.sim.mech.ignore_presence = True  # the controller's own reversal fails: the gateway's must act
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(2.0)
    assert lane.sim_state() is BollardState.RISING
    lane.sim.set_input("pressure_edge_active", True)
    seen = lane.now
    lane.run(2 * STEP_S)
    lowers = [t for t, name in lane.rig.terminals if name == "lower"]
    assert lowers
    assert lowers[0] - seen <= 2 * STEP_S + 1e-9
    lane.run(4.0)
    assert lane.sim_state() is BollardState.DOWN


@pytest.mark.parametrize(
    ("inp", "inhibit"),
    [
        ("loop_a_occupied", Inhibit.LOOP_OCCUPIED),
        ("photocell_blocked", Inhibit.PHOTOCELL),
        ("pressure_edge_active", Inhibit.PRESSURE_EDGE),
    ],
)
def test_dry_contact_each_safety_input_alone_blocks_a_raise(inp: str, inhibit: Inhibit) -> None:
    lane = DryLane()
    lane.sim.set_input(inp, True)
    lane.run(0.1)
    d = lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    assert not d.accepted
    assert d.reasons == (inhibit,)
    lane.run(2.0)
    assert not lane.rig.terminals
    assert not lane.rig.relay_on("warning")


def test_dry_contact_a_cut_safety_wire_reads_occupied() -> None:
    """NC safety contacts: an open circuit is presence, never 'free'."""
    lane = DryLane()
    lane.factory.pin(12).drive_high()  # the photocell's pair cut: the pull-up reads the contact open
    lane.lane.step(lane.now)
    d = lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    assert not d.accepted
    assert Inhibit.PHOTOCELL in d.reasons


def test_dry_contact_between_limits_at_start_is_unknown() -> None:
    """After a restart the gateway knows nothing it did not see (R18): mid-travel, no command: unknown."""
    lane = DryLane()
    lane.sim.set_state(BollardState.STOPPED_MID, position=40)
    lane.rig.write_inputs()
    fresh = DryContactLane("lane-west", lane.controller, TIMING, lambda: lane.now)
    assert fresh.step(lane.now)["state"].value == "unknown"


def test_dry_contact_both_limits_is_a_fault() -> None:
    lane = DryLane()
    lane.sim.mech.both_limits = True
    lane.run(0.1)
    assert lane.state() == "fault"
    d = lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    assert not d.accepted
    assert Inhibit.CONTROLLER_FAULT in d.reasons


def test_dry_contact_slow_rise_is_stopped_and_reported() -> None:
    lane = DryLane()
    lane.sim.mech.slow_factor = 10
    lane.sim.holding[100] = 60_000  # the controller itself would wait a minute
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(12.0)
    assert any(d.rule is Rule.MOTION_TIMEOUT for d in lane.log)
    assert "stop" in [t for _, t in lane.rig.terminals]
    assert lane.sim_state() is BollardState.STOPPED_MID
    assert [d.rule for d in lane.log].count(Rule.MOTION_TIMEOUT) == 1, "no automatic retry"


def test_dry_contact_leaving_up_without_a_command_is_drift() -> None:
    lane = DryLane()
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(5.0)
    assert lane.state() == "up"
    lane.sim.set_state(BollardState.UP, position=90)  # the valve leaks: the limit opens
    lane.rig.write_inputs()
    values = lane.lane.step(lane.now)
    assert values["state"].value == "fault"
    assert values["fault_code"].value == "drift_down"


def test_dry_contact_relays_active_low() -> None:
    """Relay boards that energise on a low pin: the same behaviour with active_high = false."""
    lane = DryLane(active_high=False)
    assert not lane.rig.relay_on("raise")
    assert not lane.rig.relay_on("warning")
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(5.0)
    assert lane.sim_state() is BollardState.UP


def test_dry_contact_unwired_optional_inputs_read_inactive_and_unknown_names_are_refused() -> None:
    lane = DryLane(wire={k: v for k, v in CONTACTS.items() if k != "pressure_edge_active"})
    values = lane.lane.step(lane.now)
    assert values["pressure_edge_active"].value is False
    assert values["estop_pressed"].value is False
    with pytest.raises(ValueError, match="no such relay or input"):
        DryContactController("x", {"open": 7}, {}, pin_factory=MockFactory())


def test_dry_contact_a_stop_during_the_raise_pulse_opens_the_raise_relay_first() -> None:
    """Never two command terminals closed at once: the last request wins."""
    lane = DryLane()
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(TIMING.pre_warn_s + 2 * STEP_S)
    assert lane.rig.relay_on("raise")
    assert lane.sup.request(Command.STOP, Authority.GUARD, lane.now).accepted
    assert not lane.rig.relay_on("raise"), "opened at once"
    assert not lane.rig.relay_on("stop"), "closed a step later: the dead time between two relays"
    lane.run(STEP_S)
    assert lane.rig.relay_on("stop")
    lane.run(1.0)
    assert lane.two_at_once == 0
    assert lane.sim_state() is BollardState.STOPPED_MID
    assert lane.state() == "stopped_mid"


async def test_dry_contact_lane_in_a_running_gateway(
    tmp_path: Path, broker: PrivateBroker, subscriber_factory: Any
) -> None:
    """Configured from TOML, on mock pins: the guard's raise is warned, pulsed and reported to the platform."""
    prefix = "campus/v1/test-school/gw-1"
    sub = await subscriber_factory(broker.url, f"{prefix}/#")
    text = config_text(tmp_path / "state", broker.url, [], [], [{"id": "door-1", "pin": 4, "kind": "door"}])
    lane_toml = (
        '\n[[lanes]]\nid = "lane-west"\npower_loss = "stay"\npre_warn_ms = 1000\n[lanes.dry_contact]\n'
        + "".join(f"{name}_relay = {pin}\n" for name, pin in RELAYS.items())
        + "".join(f'{key} = {{ pin = {pin}, contact = "{contact}" }}\n' for key, (pin, contact) in {
            "limit_up": CONTACTS["limit_up"], "limit_down": CONTACTS["limit_down"],
            "loop_a": CONTACTS["loop_a_occupied"], "photocell": CONTACTS["photocell_blocked"],
        }.items())
    )  # fmt: skip
    factory = MockFactory()
    sim = BollardSim(rise_s=0.5, lower_s=0.4)
    wired = {k: CONTACTS[k] for k in ("limit_up", "limit_down", "loop_a_occupied", "photocell_blocked")}
    rig = DryContactRig(sim, factory, RELAYS, wired)

    stepped = asyncio.Event()

    async def wiring() -> None:
        while True:
            rig.step()
            stepped.set()
            await asyncio.sleep(0.01)

    async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                stepped.clear()
                await stepped.wait()

    async with running_gateway(make_config(text + lane_toml), pin_factory=factory) as gw, asyncio.TaskGroup() as tg:
        task = tg.create_task(wiring())
        sup = gw.bollards.supervisors["lane-west"]
        await until(lambda: sup.sensors.view(False).state == "down")
        sim.set_input("loop_a_occupied", True)
        await until(lambda: sup.sensors.view(False).loop_occupied is True)
        refused = gw.bollards.request("lane-west", Command.RAISE, Authority.GUARD)
        assert refused.reasons == (Inhibit.LOOP_OCCUPIED,)
        sim.set_input("loop_a_occupied", False)
        await asyncio.sleep(1.2)  # the loop clear delay
        assert gw.bollards.request("lane-west", Command.RAISE, Authority.GUARD).accepted
        await until(lambda: sim.state is BollardState.UP)
        warned = rig.raise_warnings[0]
        assert warned is not None
        # The wiring loop samples the relays every 10 ms and may run late on a loaded machine, so the edges it sees
        # can be a step apart from the real ones; the exact pre-warning is asserted on a driven clock above.
        assert warned >= 1.0 - 0.05
        _, event = await sub.wait_for(
            lambda t, p: t == f"{prefix}/event/bollard" and p.get("point") == "state" and p.get("value") == "up"
        )
        assert event["device"] == "lane-west"
        task.cancel()
    assert not any(rig.relay_on(r) for r in RELAYS), "every relay released when the gateway stops"
    for topic, payload in sub.messages:
        validate_message(topic, payload)


async def test_dry_contact_a_restarted_task_never_pulses_a_raise_it_did_not_warn_for() -> None:
    """The lane's task dies during the pre-warning (everything released) and is started again: the raise is gone,
    not pulsed without its warning."""
    lane = DryLane()
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    task = asyncio.create_task(lane.lane.run())
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not lane.rig.relay_on("warning")
    lane.run(3.0)
    assert "raise" not in [t for _, t in lane.rig.terminals]
    assert lane.sim_state() is BollardState.DOWN


def test_dry_contact_last_look_includes_the_estop() -> None:
    lane = DryLane(wire={**CONTACTS, "estop_pressed": (7, "NC")})
    lane.lane.on_status = None
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(0.9)
    lane.sim.set_input("estop_pressed", True)
    lane.rig.write_inputs()
    lane.run(0.3)
    assert lane.lane.withheld == 1
    assert "raise" not in [t for _, t in lane.rig.terminals]


def test_dry_contact_drift_stays_a_fault_until_a_command() -> None:
    """A bollard that sank by itself from the top reads as a fault even once it is down: the leak is not healed;
    a guard's lower (the safe direction) clears it."""
    lane = DryLane()
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(5.0)
    lane.sim.mech.drift_down_pct_per_s = 50
    lane.run(4.0)
    assert lane.sim.position == 0
    assert lane.values["fault_code"].value == "drift_down"
    refused = lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    assert Inhibit.CONTROLLER_FAULT in refused.reasons
    lane.sim.mech.drift_down_pct_per_s = 0
    lane.sim.command("cmd_reset_fault")
    assert lane.sup.request(Command.LOWER, Authority.GUARD, lane.now).accepted
    lane.run(1.0)
    assert lane.state() == "down"


def test_dry_contact_a_rise_the_controller_reverses_ends_at_rest() -> None:
    """The controller's own reversal brings the bollard back down: the lane is down, the buzzer off."""
    lane = DryLane()
    lane.lane.on_status = None  # the gateway's supervisor out of the way: only the controller reverses
    lane.lane.send("cmd_raise")
    lane.run(2.0)
    lane.sim.set_input("photocell_blocked", True)
    lane.run(0.2)
    lane.sim.set_input("photocell_blocked", False)
    lane.run(4.0)
    assert lane.sim_state() is BollardState.DOWN
    assert lane.state() == "down"
    assert not lane.rig.relay_on("warning")


def test_dry_contact_a_pin_that_cannot_be_had_releases_those_claimed() -> None:
    factory = MockFactory()
    with pytest.raises(Exception, match="in use"):  # gpiozero's GPIOPinInUse
        DryContactController("x", {"raise": 5, "lower": 6}, {"limit_up": InputPin(5, "NO")}, pin_factory=factory)
    controller = DryContactController("y", {"raise": 5, "lower": 6}, {}, pin_factory=factory)
    controller.close()
