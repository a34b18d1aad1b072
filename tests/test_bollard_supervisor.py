"""The lane supervisor against the simulated controller on an injected clock: R12-R17 decisions and supervision."""

from __future__ import annotations

import pytest

from drivers.profile import load_profile
from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import Inhibit, reason
from gateway.safety.bollards.supervisor import Command, Decision, LaneSettings, LaneSupervisor, Rule
from simulators.bollard import BollardSim, BollardState, Source
from tests.test_bollard_interlocks import read

PROFILE = load_profile("bollard_controller")
POLL_S = 0.1


class SimActuator:
    """Sends requests to the simulated controller as Modbus coil writes would."""

    def __init__(self, sim: BollardSim) -> None:
        self.sim = sim
        self.sent: list[str] = []

    def send(self, request: str) -> None:
        self.sent.append(request)
        self.sim.command(request, Source.MODBUS)


class Lane:
    """A controller, its supervisor, and a clock that moves one poll at a time."""

    def __init__(self, settings: LaneSettings | None = None) -> None:
        self.now = 100.0
        self.sim = BollardSim(clock=lambda: self.now, rise_s=3.0, lower_s=2.5)
        self.actuator = SimActuator(self.sim)
        self.sup = LaneSupervisor("lane-east", settings or LaneSettings(), self.actuator)
        self.log: list[Decision] = []
        self.sup.decisions.append(self.log.append)
        self.poll()

    def poll(self) -> None:
        """One status read, as the bus poller would hand it over."""
        self.sup.on_status(read(self.sim), self.now)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += POLL_S
            self.sim.tick()
            self.poll()

    def state(self) -> BollardState:
        return self.sim.state


def test_supervisor_raise_and_lower() -> None:
    """A clear lane rises on a guard's raise and comes down on a lower; both audited as accepted."""
    lane = Lane()
    d = lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    assert (d.accepted, d.rule) == (True, Rule.ACCEPTED)
    lane.run(4.5)
    assert lane.state() is BollardState.UP
    lane.sup.request(Command.LOWER, Authority.PLATFORM, lane.now)
    lane.run(3.0)
    assert lane.state() is BollardState.DOWN
    assert [x.command for x in lane.log] == ["raise", "lower"]


@pytest.mark.parametrize(
    ("inp", "inhibit"),
    [
        ("loop_a_occupied", Inhibit.LOOP_OCCUPIED),
        ("photocell_blocked", Inhibit.PHOTOCELL),
        ("pressure_edge_active", Inhibit.PRESSURE_EDGE),
        ("estop_pressed", Inhibit.ESTOP),
        ("local_mode", Inhibit.LOCAL_MODE),
    ],
)
def test_supervisor_interlock_refuses_and_names_it(inp: str, inhibit: Inhibit) -> None:
    """Each inhibit alone: refused by the gateway's layer, the reason named, nothing sent to the controller."""
    lane = Lane()
    lane.sim.set_input(inp, True)
    lane.poll()
    d = lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    assert (d.accepted, d.rule, d.reasons) == (False, Rule.INTERLOCK, (inhibit,))
    assert lane.actuator.sent == []
    assert reason(inhibit, "en") in d.text("en")
    assert reason(inhibit, "zh-CN") in d.text("zh-CN")
    assert "已拒绝" in d.text("zh-CN")


def test_supervisor_lowers_within_one_poll_when_the_controller_does_not() -> None:
    """A vehicle on the loop during a rise, and a controller whose own reversal failed: the gateway lowers."""
    lane = Lane()
    lane.sim.mech.ignore_presence = True
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(2.0)  # pre-warning, then a second of rising
    assert lane.state() is BollardState.RISING
    lane.sim.set_input("loop_b_occupied", True)
    lane.run(POLL_S)
    assert lane.actuator.sent[-1] == "cmd_lower"
    assert lane.log[-1].rule is Rule.PRESENCE_DURING_RISE
    assert lane.state() is BollardState.LOWERING


def test_supervisor_stops_a_rise_that_does_not_finish() -> None:
    """No upper limit within rise_timeout: the gateway stops it and reports; it does not try again (R14)."""
    lane = Lane(LaneSettings(rise_timeout_s=6.0))
    lane.sim.holding[100] = 30_000  # the controller's own timeout is later: the gateway's layer acts first
    lane.sim.mech.limit_up_stuck_open = True
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(8.0)
    assert lane.actuator.sent == ["cmd_raise", "cmd_stop"]
    assert lane.log[-1].rule is Rule.MOTION_TIMEOUT
    assert lane.state() is BollardState.STOPPED_MID


def test_supervisor_fire_lowers_fire_lane_and_holds_it() -> None:
    """A fire lowers a raised fire lane even with a car on the loop; raises are refused until the panel is
    reset and a guard releases locally (R17)."""
    lane = Lane(LaneSettings(fire_lane=True))
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(4.5)
    lane.sim.set_input("loop_a_occupied", True)
    lane.sup.set_fire(True, lane.now)
    lane.run(3.0)
    assert lane.state() is BollardState.DOWN
    lane.sim.set_input("loop_a_occupied", False)
    lane.run(1.5)
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).rule is Rule.FIRE_HOLD_DOWN
    assert lane.sup.request(Command.RELEASE_FIRE_HOLD, Authority.GUARD, lane.now).rule is Rule.FIRE_NOT_RESET
    lane.sup.set_fire(False, lane.now)
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).rule is Rule.FIRE_HOLD_DOWN
    assert lane.sup.request(Command.RELEASE_FIRE_HOLD, Authority.PLATFORM, lane.now).rule is Rule.NOT_LOCAL
    assert lane.sup.request(Command.RELEASE_FIRE_HOLD, Authority.GUARD, lane.now).accepted
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted


def test_supervisor_fire_outranks_platform_and_schedule_on_other_lanes() -> None:
    """During a fire a non-fire lane may still be raised by the guard, not by the platform or a schedule."""
    lane = Lane(LaneSettings(fire_lane=False))
    lane.sup.set_fire(True, lane.now)
    assert lane.sup.request(Command.RAISE, Authority.SCHEDULE, lane.now).rule is Rule.OUTRANKED
    assert lane.sup.request(Command.RAISE, Authority.PLATFORM, lane.now).rule is Rule.OUTRANKED
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted


def test_supervisor_refuses_an_old_command() -> None:
    """A command issued longer ago than command_ttl is refused, never carried out late (R18, R19)."""
    lane = Lane()
    d = lane.sup.request(Command.RAISE, Authority.PLATFORM, lane.now, issued=lane.now - 6.0)
    assert (d.accepted, d.rule) == (False, Rule.EXPIRED)
    assert lane.actuator.sent == []


def test_supervisor_lowers_a_rise_it_cannot_see() -> None:
    """Status reads stop during a rise (the bus died): past max_staleness the gateway sends the lane down."""
    lane = Lane()
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(1.5)
    lane.now += 1.2
    lane.sup.check_staleness(lane.now)
    assert lane.actuator.sent[-1] == "cmd_lower"
    assert lane.log[-1].rule is Rule.STALE_DURING_RISE


def test_supervisor_unknown_after_restart_refuses_raise() -> None:
    """A fresh supervisor has read nothing: a raise is refused until a status arrives."""
    sim = BollardSim()
    sup = LaneSupervisor("lane-west", LaneSettings(), SimActuator(sim))
    d = sup.request(Command.RAISE, Authority.GUARD, 5.0)
    assert d.rule is Rule.INTERLOCK
    assert Inhibit.STATE_UNKNOWN in d.reasons


def test_supervisor_reports_a_raise_the_controller_refused() -> None:
    """The gateway's interlocks allowed it, the controller's own did not (a longer loop clear delay): the lane
    stays down and the refusal is reported as the controller's."""
    lane = Lane()
    lane.sim.holding[103] = 5000
    lane.sim.set_input("loop_a_occupied", True)
    lane.run(0.2)
    lane.sim.set_input("loop_a_occupied", False)
    lane.run(1.2)  # past the gateway's 1 s, not the controller's 5 s
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted
    lane.run(4.0)
    assert lane.state() is BollardState.DOWN
    assert lane.log[-1].rule is Rule.CONTROLLER_REFUSED
    assert lane.actuator.sent[-1] == "cmd_stop"  # the request is cancelled: it cannot start later
    assert not lane.log[-1].accepted


@pytest.mark.parametrize("source", list(Authority))
@pytest.mark.parametrize("command", list(Command))
def test_supervisor_no_command_reaches_efo(command: Command, source: Authority) -> None:
    """R16: no command any asker can send maps to EFO; only emergency_rise (the local key) does."""
    lane = Lane()
    lane.sup.request(command, source, lane.now)
    lane.run(1.0)
    assert "cmd_efo" not in lane.actuator.sent
    assert lane.state() is not BollardState.EFO_RISING


def test_supervisor_efo_from_the_local_key_still_respects_presence() -> None:
    """The EFO key raises at once (no pre-warning) when the lane is free; a vehicle on the loop still forbids it."""
    lane = Lane()
    lane.sim.set_efo_key(True)
    lane.sim.set_input("loop_a_occupied", True)
    lane.poll()
    refused = lane.sup.emergency_rise(lane.now)
    assert (refused.accepted, refused.reasons) == (False, (Inhibit.LOOP_OCCUPIED,))
    lane.sim.set_input("loop_a_occupied", False)
    lane.poll()
    assert lane.sup.emergency_rise(lane.now).accepted
    lane.run(0.2)
    assert lane.state() is BollardState.EFO_RISING
    lane.run(2.0)
    assert lane.state() is BollardState.UP


@pytest.mark.parametrize("rule", [r for r in Rule if r is not Rule.ACCEPTED and r is not Rule.INTERLOCK])
def test_supervisor_every_rule_explained_in_both_languages(rule: Rule) -> None:
    """A refusal without interlock reasons still tells the guard why, in Chinese and in English."""
    d = Decision("lane-east", "raise", Authority.GUARD, False, rule)
    en = d.text("en")
    assert en.startswith("lane-east: raise refused (")
    assert en.endswith(")")
    assert len(en.split("(", 1)[1]) > 10, "a sentence, not a code"
    zh = d.text("zh-CN")
    assert zh.startswith("lane-east: 升起 已拒绝 (")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.split("(", 1)[1])


def test_supervisor_fire_lowering_is_repeated_and_never_stopped() -> None:
    """The first lower is lost (the controller was in LOCAL); it is asked again until the lane is down, a
    platform STOP during the fire is refused, and a slow lowering is not stopped at the lower timeout."""
    lane = Lane(LaneSettings(fire_lane=True, lower_timeout_s=2.0))
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(4.5)
    lane.sim.set_input("local_mode", True)
    lane.sup.set_fire(True, lane.now)
    lane.run(1.5)
    assert lane.state() is BollardState.UP
    assert lane.log[-1].rule is Rule.FIRE_LANE_NOT_DOWN
    lane.sim.set_input("local_mode", False)
    lane.sim.mech.slow_factor = 2.0  # five seconds down: past the lower timeout
    lane.run(1.2)
    assert lane.state() is BollardState.LOWERING
    stop = lane.sup.request(Command.STOP, Authority.PLATFORM, lane.now)
    assert (stop.accepted, stop.rule) == (False, Rule.OUTRANKED)
    lane.run(6.0)
    assert lane.state() is BollardState.DOWN
    assert "cmd_stop" not in lane.actuator.sent


def test_supervisor_watches_a_rise_it_did_not_start() -> None:
    """A rise from the controller's own button, with its reversal broken: presence still sends it down."""
    lane = Lane()
    lane.sim.mech.ignore_presence = True
    lane.sim.command("cmd_raise", Source.LOCAL_BUTTON)
    lane.run(1.5)
    lane.sim.set_input("photocell_blocked", True)
    lane.run(POLL_S)
    assert lane.actuator.sent == ["cmd_lower"]
    assert lane.log[-1].rule is Rule.PRESENCE_DURING_RISE


def test_supervisor_raise_only_from_down_or_stopped() -> None:
    """A raise while lowering is refused: it would cancel the lowering's supervision."""
    lane = Lane()
    lane.sup.request(Command.RAISE, Authority.GUARD, lane.now)
    lane.run(4.5)
    lane.sup.request(Command.LOWER, Authority.GUARD, lane.now)
    lane.run(0.5)
    assert lane.state() is BollardState.LOWERING
    assert lane.sup.request(Command.RAISE, Authority.GUARD, lane.now).rule is Rule.NOT_FROM_STATE


def test_settings_findings_name_each_contradiction() -> None:
    """Pure check of a controller's settings against its lane (R13, R16, R18)."""
    from drivers.profile import PointValue, Quality  # noqa: PLC0415
    from gateway.config import LaneConfig  # noqa: PLC0415
    from gateway.safety.bollards.service import settings_findings  # noqa: PLC0415

    def settings(
        power: str | None, pre_warn: int, efo: int = 0, rerise: int = 0, clear: int = 1000
    ) -> dict[str, PointValue]:
        return {
            "power_loss_behaviour": PointValue(power, Quality.GOOD if power else Quality.BAD),
            "pre_warn_ms": PointValue(pre_warn, Quality.GOOD),
            "efo_remote_enable": PointValue(efo, Quality.GOOD),
            "auto_rerise_s": PointValue(rerise, Quality.GOOD),
            "loop_clear_delay_ms": PointValue(clear, Quality.GOOD),
        }

    fire = LaneConfig(id="l1", controller="b1", power_loss="auto_lower", fire_lane=True)
    assert settings_findings(fire, settings("auto_lower", 1000)) == {}
    assert set(settings_findings(fire, settings("stay", 1000))) == {"power_loss"}
    assert set(settings_findings(fire, settings(None, 1000))) == {"power_loss"}
    assert set(settings_findings(fire, settings("auto_lower", 999))) == {"pre_warn_ms"}
    assert set(settings_findings(fire, settings("auto_lower", 1000, efo=1))) == {"efo_remote_enable"}
    stay_fire = LaneConfig(id="l1", controller="b1", power_loss="stay", fire_lane=True)
    assert "fire lane" in settings_findings(stay_fire, settings("stay", 1000))["power_loss"]
    gate = LaneConfig(id="l1", controller="b1", power_loss="stay")
    assert settings_findings(gate, settings("stay", 2000)) == {}
    assert set(settings_findings(gate, settings("stay", 2000, rerise=30))) == {"auto_rerise_s"}
    assert set(settings_findings(gate, settings("stay", 2000, clear=500))) == {"loop_clear_delay_ms"}
    unreadable = settings("stay", 2000)
    unreadable["efo_remote_enable"] = PointValue(None, Quality.BAD)
    assert "cannot be read" in settings_findings(gate, unreadable)["efo_remote_enable"]


def test_supervisor_lockdown_waits_for_the_loop_then_raises() -> None:
    """A lockdown with a car on the loop: the first try is refused and names the car; once the loop has been
    clear for the clear delay the lane is raised without anyone asking again, through the same checks."""
    lane = Lane()
    lane.sim.set_input("loop_a_occupied", True)
    lane.poll()
    first = lane.sup.hold_up("lockdown", Authority.GUARD, lane.now)
    assert first is not None
    assert (first.accepted, first.reasons) == (False, (Inhibit.LOOP_OCCUPIED,))
    lane.run(3.0)
    assert lane.state() is BollardState.DOWN
    assert len(lane.log) == 1, "waiting quietly, not refusing every poll"
    lane.sim.set_input("loop_a_occupied", False)
    lane.run(0.5)
    assert lane.actuator.sent == [], "not within the loop clear delay"
    lane.run(5.0)
    assert lane.state() is BollardState.UP
    assert (lane.log[-1].command, lane.log[-1].source, lane.log[-1].accepted) == ("raise", Authority.GUARD, True)


def test_supervisor_lockdown_is_not_lowered_by_the_platform_but_by_the_guard() -> None:
    lane = Lane()
    lane.sup.hold_up("lockdown", Authority.GUARD, lane.now)
    lane.run(4.5)
    assert lane.state() is BollardState.UP
    refused = lane.sup.request(Command.LOWER, Authority.PLATFORM, lane.now)
    assert (refused.accepted, refused.rule) == (False, Rule.MODE_HOLDS_UP)
    assert "封闭管理" in refused.text("zh-CN")
    assert lane.sup.request(Command.LOWER, Authority.GUARD, lane.now).accepted
    lane.run(30.0)
    assert lane.state() is BollardState.DOWN, "the guard's lower stands: the lockdown does not raise it again"
    assert lane.sup.intents == {}


def test_supervisor_stop_ends_the_modes_of_no_higher_authority() -> None:
    """The guard's stop ends the guard's lockdown on that lane; the platform's stop is carried out but does not end
    it (the platform cannot undo the guard's lockdown by a stop and a lower)."""
    lane = Lane()
    lane.sup.hold_up("lockdown", Authority.GUARD, lane.now)
    lane.run(1.5)
    assert lane.sup.request(Command.STOP, Authority.PLATFORM, lane.now).accepted
    assert lane.sup.intents, "still the guard's"
    refused = lane.sup.request(Command.LOWER, Authority.PLATFORM, lane.now)
    assert refused.rule is Rule.MODE_HOLDS_UP
    lane.run(15.0)
    assert lane.state() is BollardState.UP, "raised again by the lockdown"
    lane.sup.request(Command.LOWER, Authority.GUARD, lane.now)
    lane.run(4.0)
    lane.sup.hold_up("lockdown", Authority.GUARD, lane.now)
    lane.run(1.5)
    assert lane.sup.request(Command.STOP, Authority.GUARD, lane.now).accepted
    lane.run(30.0)
    assert lane.state() is BollardState.STOPPED_MID
    assert lane.sup.intents == {}


@pytest.mark.parametrize("what", ["lamps", "estop", "presence", "slow"])
def test_supervisor_a_failed_rise_is_not_retried_by_a_mode(what: str) -> None:
    """R13-R15 under lockdown or school hours: a rise ended for a safety reason (no warning, the controller's
    e-stop, presence, a timeout) is not tried again when the cause is gone; the lane waits for the guard."""
    lane = Lane(LaneSettings(rise_timeout_s=6.0))
    if what == "lamps":
        lane.sim.mech.lamps_failed = 0b1100
    if what == "slow":
        lane.sim.holding[100] = 60_000
        lane.sim.mech.slow_factor = 5
    lane.sup.hold_up("schedule", Authority.SCHEDULE, lane.now)
    lane.run(2.0)
    if what == "estop":
        lane.sim.set_input("estop_pressed", True)
        lane.run(1.0)
        lane.sim.set_input("estop_pressed", False)
    if what == "presence":
        lane.sim.set_input("pressure_edge_active", True)
        lane.run(1.0)
        lane.sim.set_input("pressure_edge_active", False)
    lane.run(60.0)
    assert lane.actuator.sent.count("cmd_raise") == 1, lane.actuator.sent
    assert lane.sup.intents == {}


def test_supervisor_schedule_lowest_priority() -> None:
    """School hours raise the lane; a platform lower wins over the schedule; the end of the day lowers it unless
    a lockdown still holds it up."""
    lane = Lane()
    lane.sup.hold_up("schedule", Authority.SCHEDULE, lane.now)
    lane.run(4.5)
    assert lane.state() is BollardState.UP
    assert lane.sup.request(Command.LOWER, Authority.PLATFORM, lane.now).accepted
    lane.run(15.0)
    assert lane.state() is BollardState.DOWN
    lane.sup.hold_up("schedule", Authority.SCHEDULE, lane.now)
    lane.sup.hold_up("lockdown", Authority.GUARD, lane.now)
    lane.run(4.5)
    assert lane.state() is BollardState.UP
    assert lane.sup.end_mode("schedule", lane.now, lower=True) is None, "the lockdown keeps it up"
    lane.sup.end_mode("lockdown", lane.now)
    lane.run(4.0)
    assert lane.state() is BollardState.UP, "the end of a lockdown leaves the lane as it is"
    lane.sup.hold_up("schedule", Authority.SCHEDULE, lane.now)
    d = lane.sup.end_mode("schedule", lane.now, lower=True)
    assert d is not None
    assert (d.command, d.source, d.accepted) == ("lower", Authority.SCHEDULE, True)


def test_supervisor_schedule_does_not_raise_during_a_fire() -> None:
    """The schedule is outranked by the fire linkage on every lane; the guard's lockdown is not, off fire lanes."""
    lane = Lane()
    lane.sup.set_fire(True, lane.now)
    d = lane.sup.hold_up("schedule", Authority.SCHEDULE, lane.now)
    assert d is not None
    assert (d.accepted, d.rule) == (False, Rule.OUTRANKED)
    lane.run(20.0)
    assert lane.state() is BollardState.DOWN
    locked = lane.sup.hold_up("lockdown", Authority.GUARD, lane.now)
    assert locked is not None
    assert locked.accepted


class DeadBus:
    """An actuator whose bus is down: requests are taken and never arrive."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, request: str) -> None:
        self.sent.append(request)


def test_supervisor_told_a_raise_was_not_delivered_says_so_and_stops_watching() -> None:
    """The audit trail shows the acceptance and then that it never reached the controller; no timeout follows."""
    lane = Lane()
    sup = LaneSupervisor("lane-east", LaneSettings(), DeadBus())
    log: list[Decision] = []
    sup.decisions.append(log.append)
    sup.on_status(read(lane.sim), lane.now)
    assert sup.request(Command.RAISE, Authority.GUARD, lane.now).accepted
    sup.not_delivered("cmd_raise", lane.now)
    for _ in range(150):
        lane.now += POLL_S
        sup.on_status(read(lane.sim), lane.now)
    assert [(d.command, d.rule) for d in log] == [("raise", Rule.ACCEPTED), ("raise", Rule.NOT_DELIVERED)]
    assert "命令未能送达控制器" in log[-1].text("zh-CN")
