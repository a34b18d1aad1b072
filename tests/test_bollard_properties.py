"""Random sequences against the lane supervisor and the simulated controller: the safety properties hold after every
poll (issue 5, point 7). 200 sequences of up to 100 steps (over 10,000 in all, counted), every step followed by
up to 50 polls of checks.

Properties:
- no bollard moves up while a vehicle or person is detected (loop, photocell, pressure edge) for longer than one
  poll, whatever the controller's own reversal does (it can be made to fail);
- no rise starts without the warning lights and buzzer having been on for the pre-warning time;
- no fire lane is up or rising once a fire has had the time to lower it, unless its controller is without power,
  faulted or manually released (each of them reported by the controller's state);
- EFO never comes from anything the supervisor does: only a local input can start it;
- no raise command leaves the gateway while anything it knows inhibits a raise (R12), checked as it is sent.
Lockdown and school hours come and go among the steps: the raises the supervisor then makes by itself are held
to the same properties.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from drivers.profile import load_profile
from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import raise_inhibits
from gateway.safety.bollards.supervisor import Command, LaneSettings, LaneSupervisor
from simulators.bollard import BollardSim, BollardState, Source
from tests.test_bollard_interlocks import read
from tests.test_bollard_supervisor import SimActuator


class CheckedActuator(SimActuator):
    """Checks R12 at the moment a raise leaves the gateway: nothing the gateway knows inhibits it."""

    def __init__(self, sim: BollardSim, machine: LaneMachine) -> None:
        super().__init__(sim)
        self.machine = machine

    def send(self, request: str) -> None:
        if request == "cmd_raise":
            m = self.machine
            held = raise_inhibits(m.sup.sensors.view(m.sup.fire_hold), m.now, m.sup.settings.interlocks)
            assert not held, f"raise sent while {held}"
        super().send(request)


PROFILE = load_profile("bollard_controller")
POLL_S = 0.1
PRESENCE = ("loop_a_occupied", "loop_b_occupied", "photocell_blocked", "pressure_edge_active")
FIRE_LOWERS_WITHIN_S = 3.5  # lower_s 2.5 s at normal speed, plus a poll and margin


class LaneMachine(RuleBasedStateMachine):
    """One lane: a controller with injectable faults, its supervisor, a clock moved one poll at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.sim = BollardSim(clock=lambda: self.now, rise_s=3.0, lower_s=2.5)
        self.actuator = CheckedActuator(self.sim, self)
        self.sup = LaneSupervisor("lane", LaneSettings(fire_lane=True), self.actuator)
        self.presence_since: float | None = None
        self.fire_since: float | None = None
        self.hold_since: float | None = None
        self.rising_seen_at: float | None = None  # RISING at position 0: the warning phase
        self.last_position = 0.0

    @initialize(fire_lane=st.booleans(), reversal_fails=st.booleans())
    def setup(self, fire_lane: bool, reversal_fails: bool) -> None:
        # Half the lanes have a controller whose own reversal is broken: the gateway's layer must hold alone.
        self.sim.mech.ignore_presence = reversal_fails
        self.sup = LaneSupervisor("lane", LaneSettings(fire_lane=fire_lane, rise_timeout_s=8.0), self.actuator)
        self.poll()

    # -- the world ---------------------------------------------------------------------------------------------

    def poll(self) -> None:
        if self.sim.powered:
            self.sup.on_status(read(self.sim), self.now)
        self.sup.check_staleness(self.now)
        self.check()

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += POLL_S
            self.sim.tick()
            self.poll()

    # -- rules -------------------------------------------------------------------------------------------------

    @rule(source=st.sampled_from(list(Authority)), late=st.sampled_from([False, False, False, True]))
    def raise_lane(self, source: Authority, late: bool) -> None:
        self.ask(Command.RAISE, source, late)

    @rule(
        command=st.sampled_from([Command.LOWER, Command.STOP, Command.RELEASE_FIRE_HOLD]),
        source=st.sampled_from(list(Authority)),
        late=st.booleans(),
    )
    def other_command(self, command: Command, source: Authority, late: bool) -> None:
        self.ask(command, source, late)

    def ask(self, command: Command, source: Authority, late: bool) -> None:
        self.sup.request(command, source, self.now, issued=self.now - (10.0 if late else 0.0))
        self.check()

    @rule(name=st.sampled_from(PRESENCE), value=st.sampled_from([True, False, False]))
    def presence(self, name: str, value: bool) -> None:
        self.sim.set_input(name, value)
        present = any(self.sim.inputs[n] for n in PRESENCE)
        if present and self.presence_since is None:
            self.presence_since = self.now
        elif not present:
            self.presence_since = None
        self.check()

    @rule(
        name=st.sampled_from(["estop_pressed", "local_mode", "manual_release_engaged"]),
        value=st.sampled_from([True, False, False]),
    )
    def field_input(self, name: str, value: bool) -> None:
        self.sim.set_input(name, value)
        self.check()

    @rule(
        slow=st.sampled_from([1.0, 1.0, 2.0, 3.0]),
        stuck=st.sampled_from([False, False, True]),
        overcurrent=st.sampled_from([False] * 7 + [True]),
    )
    def mechanics(self, slow: float, stuck: bool, overcurrent: bool) -> None:
        self.sim.mech.slow_factor = slow
        self.sim.mech.limit_up_stuck_open = stuck
        self.sim.mech.overcurrent_on_motion = overcurrent

    @rule(dead=st.sampled_from([0, 0, 0, 0b0100, 0b1000, 0b1100]))
    def lamps(self, dead: int) -> None:
        """The flasher or the buzzer dies (or is repaired): a rise must not start unannounced (R13)."""
        self.sim.mech.lamps_failed = dead

    @rule(active=st.booleans())
    def fire(self, active: bool) -> None:
        self.sup.set_fire(active, self.now)
        self.fire_since = (self.fire_since or self.now) if active else None
        self.check()

    @rule(behaviour=st.sampled_from([0, 1]), off_s=st.sampled_from([0.5, 3.0]))
    def power_loss(self, behaviour: int, off_s: float) -> None:
        self.sim.holding[107] = behaviour
        self.sim.power_off()
        self.run(off_s)
        self.sim.power_on()
        self.poll()

    # Two composite steps that reach the dangerous moments more often than single steps would by chance: a
    # presence appearing while the lane is (perhaps) rising, and a fire while it is (perhaps) up.

    @rule(
        source=st.sampled_from(list(Authority)),
        after_s=st.sampled_from([0.5, 1.2, 2.0, 3.0]),
        name=st.sampled_from(PRESENCE),
    )
    def presence_during_rise(self, source: Authority, after_s: float, name: str) -> None:
        self.ask(Command.RAISE, source, False)
        self.run(after_s)
        self.presence(name, True)
        self.run(1.0)

    @rule(source=st.sampled_from(list(Authority)), stopper=st.sampled_from([None, *Authority]))
    def fire_while_up(self, source: Authority, stopper: Authority | None) -> None:
        self.ask(Command.RAISE, source, False)
        self.run(5.0)
        self.fire(True)
        if stopper is not None:
            self.run(0.5)
            self.ask(Command.STOP, stopper, False)  # someone stops the fire lane on its way down
        self.run(5.0)

    @rule()
    def calm(self) -> None:
        """Everything clears: the lane is free, faults are repaired and reset. Raises can succeed again."""
        for name in (*PRESENCE, "estop_pressed", "local_mode", "manual_release_engaged"):
            if self.sim.inputs[name]:
                self.sim.set_input(name, False)
        self.presence_since = None
        self.sim.mech.overcurrent_on_motion = False
        self.sim.mech.limit_up_stuck_open = False
        self.sim.mech.slow_factor = 1.0
        self.sim.command("cmd_reset_fault", Source.LOCAL_BUTTON)
        self.run(1.2)  # past the loop clear delay

    @rule(
        mode=st.sampled_from(["lockdown", "schedule"]),
        on=st.booleans(),
        source=st.sampled_from([Authority.GUARD, Authority.PLATFORM, Authority.SCHEDULE]),
    )
    def mode(self, mode: str, on: bool, source: Authority) -> None:
        """Lockdown or school hours begin or end: the supervisor then raises by itself, whenever it finds the
        lane clear, which must hold every property a requested raise does."""
        if on:
            self.sup.hold_up(mode, Authority.SCHEDULE if mode == "schedule" else source, self.now)
        else:
            self.sup.end_mode(mode, self.now, lower=mode == "schedule")
        self.poll()

    @rule()
    def technician_resets_fault(self) -> None:
        self.sim.command("cmd_reset_fault", Source.LOCAL_BUTTON)
        self.check()

    @rule(seconds=st.sampled_from([0.1, 0.5, 2.0, 5.0, 5.0]))
    def wait(self, seconds: float) -> None:
        self.run(seconds)

    # -- properties --------------------------------------------------------------------------------------------

    def check(self) -> None:
        sim = self.sim
        moving_up = sim.state in (BollardState.RISING, BollardState.EFO_RISING) and sim.position > self.last_position
        # No rise into a vehicle or a person beyond the poll the gateway needs to see it.
        # A controller in LOCAL refuses the gateway's lower: its own reversal is then the only layer there is.
        if (
            self.presence_since is not None
            and self.now - self.presence_since > POLL_S + 1e-9
            and not (sim.inputs["local_mode"] and sim.mech.ignore_presence)
        ):
            assert not moving_up, f"rising {self.now - self.presence_since:.1f} s into presence"
        # No rise without the warning first.
        if sim.state is BollardState.RISING and self.rising_seen_at is None and sim.position == 0:
            self.rising_seen_at = self.now
        if sim.state is not BollardState.RISING:
            self.rising_seen_at = None
        if moving_up and self.last_position == 0 and sim.state is BollardState.RISING:
            assert sim.lights & 0b1100 == 0b1100, "moving up without flasher and buzzer"
            # Unless the key switch is in LOCAL: the controller then takes no remote command, the gateway's lower
            # included, and the person at the controller is in charge (the same exclusion as for presence).
            if not sim.inputs["local_mode"]:
                assert not sim.mech.lamps_failed & 0b1100, "moving up while the flasher or buzzer is dead"
            assert self.rising_seen_at is not None
            assert self.now - self.rising_seen_at >= sim.holding[102] / 1000 - POLL_S - 1e-9, "warning too short"
        # Fire lanes are down (or on their way) once the fire had time to lower them, for as long as the fire
        # hold lasts, whatever was asked meanwhile.
        if self.sup.fire_hold and self.sup.settings.fire_lane:
            self.hold_since = self.now if self.hold_since is None else self.hold_since
        else:
            self.hold_since = None
        if (
            self.hold_since is not None
            and self.now - self.hold_since > FIRE_LOWERS_WITHIN_S * sim.mech.slow_factor
            and sim.powered
            and sim.state not in (BollardState.FAULT, BollardState.MANUAL, BollardState.UNKNOWN)
            and not sim.inputs["manual_release_engaged"]
            and not sim.inputs["estop_pressed"]
            and not sim.inputs["local_mode"]
        ):
            assert sim.state in (BollardState.DOWN, BollardState.LOWERING), (
                f"fire lane {sim.state.name} {self.now - self.hold_since:.1f} s into a fire hold"
            )
        # EFO only from a local input: never from the supervisor.
        assert "cmd_efo" not in self.actuator.sent
        assert sim.state is not BollardState.EFO_RISING
        self.last_position = sim.position

    @invariant()
    def safe(self) -> None:
        STEPS[0] += 1
        self.check()


STEPS = [0]


LaneMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=100, deadline=None)
test_bollard_safety_properties = LaneMachine.TestCase


def test_bollard_properties_ran_enough_steps() -> None:
    """Issue 5 asks for at least 10,000 steps in CI; the state machine above counts them (run it first)."""
    if STEPS[0] == 0:
        import pytest  # noqa: PLC0415

        pytest.skip("the property test did not run in this session")
    assert STEPS[0] >= 10_000, STEPS[0]
