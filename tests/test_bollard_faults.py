"""The fifteen faults of devices.md 3.7: each injected from scenario text, and each ending safe and reported.

Part one plays every scenario action that injects a fault into a started simulated site and reads the effect back
over Modbus TCP on loopback with the gateway's own bus driver. Part two plays one scenario per fault (or per
variant of one) against a lane supervisor on an injected clock (the `Lane` harness of the supervisor tests, with
the bus between them modelled from the controller's Modbus faults), and checks where it ends: nothing moving up
into a vehicle or person, no rise going on, and the fault reported by the controller or by a decision of the
supervisor. Faults today's supervisor does not report are expected failures, each with the reason.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from drivers.errors import DeviceException, DeviceTimeout
from drivers.modbus import Function, ModbusBus, RequestPolicy
from gateway.safety.authority import Authority
from gateway.safety.bollards.interlocks import Inhibit
from gateway.safety.bollards.supervisor import Command, LaneSettings, Rule
from simulators.bollard import BollardSim, BollardState, Fault, MotionFaults
from simulators.devices import Faults
from simulators.scenario import ACTIONS, VALUES, ScenarioError, Step, parse_scenario
from simulators.site import SimulatedSite
from tests.test_bollard_supervisor import POLL_S, PROFILE, Lane, SimActuator

FAST = RequestPolicy(timeout_s=0.2, retries=0)
BOLLARD = 1  # unit ids on the site's TCP bus
SMOKE = 2


def step(at_s: float, action: str, value: str | bool | float | None = None, target: str = "bollard-east") -> str:
    """One `[[step]]` table of a scenario file (JSON strings and booleans are TOML too)."""
    text = f"[[step]]\nat_s = {at_s}\ntarget = {json.dumps(target)}\naction = {json.dumps(action)}\n"
    return text if value is None else text + f"value = {json.dumps(value)}\n"


# -- part one: the scenario actions, against a started site -----------------------------------------------------


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    """A bollard controller and a smoke detector on one Modbus TCP endpoint on loopback."""
    s = SimulatedSite()
    s.add_tcp_bus("tcp-1")
    s.add_device("bollard-east", "tcp-1", BOLLARD, "bollard_controller")
    s.add_device("smoke-1", "tcp-1", SMOKE, "smoke_detector")
    async with s:
        yield s


@pytest.fixture
async def bus(site: SimulatedSite) -> AsyncIterator[ModbusBus]:
    """The gateway's bus driver, connected to the site."""
    host, port = site.tcp_address("tcp-1")
    async with ModbusBus.tcp("tcp-1", host, port) as b:
        yield b


def play(site: SimulatedSite, *steps: str) -> None:
    """Parse scenario text and apply its steps at once, in order."""
    for s in parse_scenario("".join(steps), "test.toml"):
        site.apply(s)


def bollard(site: SimulatedSite) -> BollardSim:
    sim = site.devices["bollard-east"]
    assert isinstance(sim, BollardSim)
    return sim


async def read(bus: ModbusBus, function: Function, address: int, count: int = 1, unit: int = BOLLARD) -> list[int]:
    return await bus.read(unit, function, address, count, FAST)


MOTION_FAULTS = [
    ("slow_factor=3", 3.0),
    ("limit_up_stuck_open=true", True),
    ("limit_down_stuck_open=true", True),
    ("both_limits=true", True),
    ("drift_down_pct_per_s=2.5", 2.5),
    ("overcurrent_on_motion=true", True),
    ("ignore_presence=true", True),
    ("lamps_failed=0b1001", 0b1001),
    ("trip=motor_thermal", Fault.MOTOR_THERMAL),
]
MODBUS_FAULTS = [
    ("silent=true", True),
    ("drop_next_replies=2", 2),
    ("corrupt_next_crc=3", 3),
    ("stall_s=0.4", 0.4),
    ("exception_next=4", 4),
    ("wrong_unit_next=2", 2),
    ("truncate_next=2", 2),
    ("frozen=true", True),
]


def test_faults_scenario_cases_cover_every_field() -> None:
    """Every field of MotionFaults and of Faults has a case below: a new knob cannot be left out of scenarios."""
    assert {v.partition("=")[0] for v, _ in MOTION_FAULTS} == {f.name for f in dataclasses.fields(MotionFaults)}
    assert {v.partition("=")[0] for v, _ in MODBUS_FAULTS} == {f.name for f in dataclasses.fields(Faults)}


@pytest.mark.parametrize(("value", "expected"), MOTION_FAULTS)
async def test_faults_scenario_fault_sets_the_field(site: SimulatedSite, value: str, expected: object) -> None:
    """`fault` with "FIELD=VALUE" sets that field of the controller's MotionFaults, typed."""
    play(site, step(1.5, "fault", value))
    name = value.partition("=")[0]
    assert getattr(bollard(site).mech, name) == expected
    assert type(getattr(bollard(site).mech, name)) is type(expected)


@pytest.mark.parametrize(("value", "expected"), MODBUS_FAULTS)
async def test_faults_scenario_modbus_fault_sets_the_field(site: SimulatedSite, value: str, expected: object) -> None:
    """`modbus_fault` with "FIELD=VALUE" sets that field of any device's Faults (here a smoke detector's)."""
    play(site, step(1.5, "modbus_fault", value, target="smoke-1"))
    assert getattr(site.devices["smoke-1"].faults, value.partition("=")[0]) == expected


async def test_faults_scenario_faults_show_on_the_wire(site: SimulatedSite, bus: ModbusBus) -> None:
    """What the injected faults change is what the gateway reads: lamp current, limit switches, state and code."""
    assert (await read(bus, 4, 14))[0] == 0b0010  # DOWN: green
    play(site, step(0, "fault", "lamps_failed=0b0010"))
    assert (await read(bus, 4, 14))[0] == 0
    play(site, step(0, "fault", "lamps_failed=0"), step(0, "fault", "limit_down_stuck_open=true"))
    assert await read(bus, 2, 0, 2) == [0, 0]  # neither limit switch closed
    play(site, step(0, "fault", "limit_down_stuck_open=false"), step(0, "fault", "both_limits=true"))
    assert await read(bus, 2, 0, 2) == [1, 1]
    assert await read(bus, 4, 1, 2) == [BollardState.FAULT, Fault.BOTH_LIMITS]


async def test_faults_scenario_drift_faults_a_raised_bollard(site: SimulatedSite, bus: ModbusBus) -> None:
    """A raised bollard with a leaking valve (fast here, so that the next read sees it) reports drift down."""
    play(site, step(0, "state", "up"), step(0, "fault", "drift_down_pct_per_s=1000"))
    assert await read(bus, 4, 1, 2) == [BollardState.FAULT, Fault.DRIFT_DOWN]
    assert await read(bus, 2, 0) == [0]


async def test_faults_scenario_trip_and_technician_reset(site: SimulatedSite, bus: ModbusBus) -> None:
    """A thermal trip faults the controller; the technician's reset is refused until the trip is cleared, then
    the controller is DOWN again and says the last command came from its local buttons."""
    play(site, step(0, "fault", "trip=motor_thermal"))
    assert await read(bus, 4, 1, 2) == [BollardState.FAULT, Fault.MOTOR_THERMAL]
    play(site, step(1, "reset_fault"))
    assert bollard(site).refusals[-1] == "reset: the cause is still there"
    play(site, step(2, "fault", "trip=none"), step(3, "reset_fault"))
    assert await read(bus, 4, 1, 2) == [BollardState.DOWN, Fault.NONE]
    assert await read(bus, 4, 13) == [1]  # last command source: local button


@pytest.mark.parametrize(("behaviour", "register", "after"), [("stay", 0, BollardState.UNKNOWN), ("lower", 1, 1)])
async def test_faults_scenario_power_loss_off_and_on(
    site: SimulatedSite, bus: ModbusBus, behaviour: str, register: int, after: int
) -> None:
    """`power_loss` writes the hardware's behaviour to holding register 107; `power_off` silences the controller
    (a stopped bollard stays or sinks); after `power_on` it answers, UNKNOWN mid-way or DOWN on its limit."""
    play(site, step(0, "power_loss", behaviour), step(0, "state", "stopped_mid"), step(0, "position", 50))
    assert await read(bus, 3, 107) == [register]
    play(site, step(1, "power_off"))
    with pytest.raises(DeviceTimeout):
        await read(bus, 4, 1)
    play(site, step(2, "power_on"))
    assert await read(bus, 4, 1) == [after]


async def test_faults_scenario_efo_key(site: SimulatedSite, bus: ModbusBus) -> None:
    """`efo_key` true enables the EFO coil (holding register 105, read-only over Modbus); false disables it."""
    play(site, step(0, "efo_key", True))
    assert await read(bus, 3, 105) == [1]
    play(site, step(1, "efo_key", False))
    assert await read(bus, 3, 105) == [0]


async def test_faults_scenario_modbus_faults_on_the_wire(site: SimulatedSite, bus: ModbusBus) -> None:
    """`modbus_fault` on a smoke detector: an exception once, a dropped reply, a late reply, silence; each ends."""
    play(site, step(0, "modbus_fault", "exception_next=4", target="smoke-1"))
    with pytest.raises(DeviceException) as exc:
        await read(bus, 4, 0, unit=SMOKE)
    assert exc.value.code == 4
    await read(bus, 4, 0, unit=SMOKE)
    play(site, step(1, "modbus_fault", "drop_next_replies=1", target="smoke-1"))
    with pytest.raises(DeviceTimeout):
        await read(bus, 4, 0, unit=SMOKE)
    await read(bus, 4, 0, unit=SMOKE)
    play(site, step(2, "modbus_fault", "silent=true", target="smoke-1"))
    with pytest.raises(DeviceTimeout):
        await read(bus, 4, 0, unit=SMOKE)
    play(site, step(3, "modbus_fault", "silent=false", target="smoke-1"), step(3, "modbus_fault", "stall_s=0.4"))
    await read(bus, 4, 0, unit=SMOKE)
    with pytest.raises(DeviceTimeout):
        await read(bus, 4, 0)  # the bollard controller answers later than 0.2 s


@pytest.mark.parametrize(
    ("action", "value", "message"),
    [
        ("fault", "slow_factor=fast", "slow_factor: expected a factor > 0 (1 normal, 2 twice as slow), got 'fast'"),
        ("fault", "slow_factor=0", "slow_factor: expected a factor > 0 (1 normal, 2 twice as slow), got '0'"),
        ("fault", "both_limits=yes", "both_limits: expected true or false, got 'yes'"),
        ("fault", "drift_down_pct_per_s=-1", "drift_down_pct_per_s: expected a number >= 0, got '-1'"),
        ("fault", "lamps_failed=16", "lamps_failed: expected a mask of input register 14 bits, 0 to 0b1111, got '16'"),
        ("fault", "trip=hot", "trip: expected one of " + ", ".join(f.name.lower() for f in Fault) + ", got 'hot'"),
        ("fault", "slowfactor=2", "no field 'slowfactor'; expected one of both_limits, drift_down_pct_per_s, "
         "ignore_presence, lamps_failed, limit_down_stuck_open, limit_up_stuck_open, overcurrent_on_motion, "
         "slow_factor, trip"),
        ("fault", True, 'expected value = "FIELD=VALUE", got True'),
        ("modbus_fault", "exception_next=5", "exception_next: expected an exception code (1, 2, 3, 4, 6) or none, "
         "got '5'"),
        ("modbus_fault", "stall_s=long", "stall_s: expected a number >= 0, got 'long'"),
        ("modbus_fault", "drop_next_replies=1.5", "drop_next_replies: expected an integer >= 0, got '1.5'"),
        ("power_loss", "up", "expected value = \"stay\" or \"lower\", got 'up'"),
        ("efo_key", "true", "expected value = true or false, got 'true'"),
        ("power_off", "lower", "takes no value, got 'lower'"),
        ("reset_fault", True, "takes no value, got True"),
    ],
)  # fmt: skip
def test_faults_scenario_bad_value_names_the_step(action: str, value: str | bool, message: str) -> None:
    """A bad value stops the file when it is parsed, naming file, time, target, action and what was expected."""
    with pytest.raises(ScenarioError) as err:
        parse_scenario(step(2.5, action, value), "lane.toml")
    assert str(err.value) == f"lane.toml: step at 2.5 s: 'bollard-east' {action}: {message}"


async def test_faults_scenario_bad_step_built_in_code(site: SimulatedSite) -> None:
    """Steps built in code are checked when applied; a bollard fault on a smoke detector is refused."""
    with pytest.raises(ScenarioError) as err:
        site.apply(Step(4.0, "bollard-east", "fault", "overcurrent_on_motion=1"))
    assert str(err.value) == "step at 4 s: 'bollard-east' fault: overcurrent_on_motion: expected true or false, got '1'"
    with pytest.raises(ScenarioError) as err:
        site.apply(Step(5.0, "smoke-1", "fault", "both_limits=true"))
    assert str(err.value) == "step at 5 s: smoke_detector 'smoke-1' cannot 'fault'"


def test_faults_scenario_every_checked_action_is_listed() -> None:
    """Each action whose value is checked is documented in ACTIONS (and so accepted in files)."""
    assert set(VALUES) <= set(ACTIONS)


# -- part two: every fault ends safe and reported ---------------------------------------------------------------

REPLY_TIMEOUT_S = 0.5  # the RTU bus default: a reply later than this is no reply


class BusLane(Lane):
    """The supervisor tests' lane, with the bus in between and scenario steps applied on the lane's clock.

    Each status read takes one request per profile block, each command one coil write, and the controller's
    Modbus faults (`sim.faults`) decide, request by request and without retries, whether it reaches the
    controller and whether its reply comes back in time. A status read that fails goes to `check_staleness`, as
    the gateway's bollard service does with a failed poll. Steps target the controller ("bollard-east") through a
    SimulatedSite, or the guard's buttons ("lane-east").
    """

    def __init__(self, settings: LaneSettings | None = None) -> None:
        self.into_presence: list[float] = []  # times the bollard moved up with a presence seen a poll before
        self._presence = False
        self._position = 0.0
        self.moving_up = False  # the bollard rose between the last two polls
        super().__init__(settings)
        self.actuator = BusActuator(self)
        self.sup.actuator = self.actuator
        self.site = SimulatedSite()
        self.site.devices["bollard-east"] = self.sim
        self.site.externals["lane-east"] = self._guard

    def transaction(self) -> tuple[bool, bool]:
        """One request on the bus: (carried out by the controller, good reply in time)."""
        f = self.sim.faults
        if f.silent:
            return False, False
        if f.drop_next_replies > 0:
            f.drop_next_replies -= 1
            return False, False
        if f.exception_next is not None:
            f.exception_next = None
            return True, False
        if f.corrupt_next_crc > 0:
            f.corrupt_next_crc -= 1
            return True, False
        if f.wrong_unit_next > 0 or f.truncate_next > 0:
            f.wrong_unit_next = max(0, f.wrong_unit_next - 1)
            f.truncate_next = max(0, f.truncate_next - 1)
            return True, False
        return True, f.stall_s < REPLY_TIMEOUT_S

    def poll(self) -> None:
        """Watch the bollard as a bystander would, then read its status over the bus, or fail to."""
        moved_up = self.sim.position > self._position + 1e-9
        if self._presence and moved_up:
            self.into_presence.append(self.now)
        self._presence = any(self.sim.inputs[name] for name in BollardSim.PRESENCE)
        self._position = self.sim.position
        self.moving_up = moved_up
        if all(self.transaction()[1] for _block in PROFILE.blocks):
            super().poll()
        else:
            self.sup.check_staleness(self.now)

    def _guard(self, s: Step) -> None:
        command = {"guard_raise": Command.RAISE, "guard_lower": Command.LOWER, "guard_stop": Command.STOP}[s.action]
        self.sup.request(command, Authority.GUARD, self.now)

    def play(self, scenario: str, until_s: float) -> None:
        """Apply each step at its time from now, one poll at a time, and go on polling until `until_s`."""
        start = self.now
        for s in parse_scenario(scenario, "fault case"):
            while self.now < start + s.at_s - 1e-6:
                self.run(POLL_S)
            self.site.apply(s)
        while self.now < start + until_s - 1e-6:
            self.run(POLL_S)


class BusActuator(SimActuator):
    """Coil writes that cross the lane's bus: a write the controller never received is not carried out."""

    def __init__(self, lane: BusLane) -> None:
        super().__init__(lane.sim)
        self.lane = lane

    def send(self, request: str) -> None:
        self.sent.append(request)
        if self.lane.transaction()[0]:
            self.sim.command(request)


@dataclass(frozen=True)
class Case:
    """One fault of devices.md 3.7 (`fault` is its number there), as a scenario and what must report it."""

    fault: int
    name: str
    scenario: str
    until_s: float
    controller: Fault | None = None  # the fault code the supervisor's sensors must read at the end
    rule: Rule | None = None  # a decision of the supervisor with this rule ...
    inhibit: Inhibit | None = None  # ... naming this inhibit
    xfail: str = ""

    def param(self) -> object:
        marks = [pytest.mark.xfail(reason=self.xfail, strict=True)] if self.xfail else []
        return pytest.param(self, id=f"{self.fault:02d}-{self.name}", marks=marks)


RAISE = step(0, "guard_raise", target="lane-east")
RAISE_LATER = step(0.5, "guard_raise", target="lane-east")

CASES = [
    Case(1, "vehicle-before-rise", step(0, "input", "loop_a_occupied=true") + RAISE_LATER, 2,
         rule=Rule.INTERLOCK, inhibit=Inhibit.LOOP_OCCUPIED),
    Case(1, "vehicle-during-rise", RAISE + step(2, "input", "loop_b_occupied=true"), 6,
         rule=Rule.PRESENCE_DURING_RISE, inhibit=Inhibit.LOOP_OCCUPIED),
    Case(2, "person-on-head-during-rise", RAISE + step(2, "input", "pressure_edge_active=true"), 6,
         rule=Rule.PRESENCE_DURING_RISE, inhibit=Inhibit.PRESSURE_EDGE),
    Case(3, "loop-stuck-occupied",
         step(0, "input", "loop_a_occupied=true") + step(5, "guard_raise", target="lane-east"), 7,
         rule=Rule.INTERLOCK, inhibit=Inhibit.LOOP_OCCUPIED),
    Case(3, "loop-detector-fault-output", step(0, "fault", "trip=loop_detector_fault") + RAISE_LATER, 2,
         controller=Fault.LOOP_DETECTOR_FAULT, rule=Rule.INTERLOCK, inhibit=Inhibit.CONTROLLER_FAULT),
    Case(3, "loop-stuck-free-photocell-sees-it", RAISE + step(2, "input", "photocell_blocked=true"), 6,
         rule=Rule.PRESENCE_DURING_RISE, inhibit=Inhibit.PHOTOCELL),
    Case(4, "photocell-blocked-dirty-lens", step(0, "input", "photocell_blocked=true") + RAISE_LATER, 2,
         rule=Rule.INTERLOCK, inhibit=Inhibit.PHOTOCELL),
    Case(4, "photocell-fault-mid-rise", RAISE + step(2, "fault", "trip=photocell_fault"), 11,
         controller=Fault.PHOTOCELL_FAULT, rule=Rule.CONTROLLER_FAULT, inhibit=Inhibit.CONTROLLER_FAULT),
    Case(5, "limit-up-stuck-open", step(0, "fault", "limit_up_stuck_open=true") + RAISE, 11,
         controller=Fault.RISE_TIMEOUT, rule=Rule.CONTROLLER_FAULT),
    Case(5, "limit-down-stuck-open", step(0, "fault", "limit_down_stuck_open=true") + RAISE_LATER, 2,
         rule=Rule.INTERLOCK, inhibit=Inhibit.STATE_UNKNOWN),
    Case(5, "both-limits-mid-rise", RAISE + step(2, "fault", "both_limits=true"), 11,
         controller=Fault.BOTH_LIMITS, rule=Rule.CONTROLLER_FAULT),
    Case(5, "limit-up-bounces-while-up",
         RAISE + step(5, "fault", "limit_up_stuck_open=true") + step(5.2, "fault", "limit_up_stuck_open=false"), 7,
         controller=Fault.DRIFT_DOWN),
    Case(6, "slow-beyond-timeout", step(0, "fault", "slow_factor=3") + RAISE, 11,
         controller=Fault.RISE_TIMEOUT, rule=Rule.CONTROLLER_FAULT),
    Case(7, "overcurrent", step(0, "fault", "overcurrent_on_motion=true") + RAISE, 11,
         controller=Fault.MOTOR_OVERCURRENT, rule=Rule.CONTROLLER_FAULT),
    Case(7, "thermal-trip-mid-rise", RAISE + step(2, "fault", "trip=motor_thermal"), 11,
         controller=Fault.MOTOR_THERMAL, rule=Rule.CONTROLLER_FAULT),
    Case(7, "hydraulic-pressure-low-mid-rise", RAISE + step(2.5, "fault", "trip=hydraulic_pressure_low"), 11,
         controller=Fault.HYDRAULIC_PRESSURE_LOW, rule=Rule.CONTROLLER_FAULT),
    Case(7, "oil-level-low-before-rise", step(0, "fault", "trip=oil_level_low") + RAISE_LATER, 2,
         controller=Fault.OIL_LEVEL_LOW, rule=Rule.INTERLOCK, inhibit=Inhibit.CONTROLLER_FAULT),
    Case(8, "drift-down-while-up", RAISE + step(5, "fault", "drift_down_pct_per_s=2"), 8,
         controller=Fault.DRIFT_DOWN),
    Case(9, "mains-loss-stay-up-hardware-mid-rise",
         step(0, "power_loss", "stay") + RAISE + step(2, "power_off") + step(6, "power_on"), 8,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(9, "mains-loss-auto-lower-hardware-mid-rise",
         step(0, "power_loss", "lower") + RAISE + step(2, "power_off") + step(6, "power_on"), 8,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(9, "mains-loss-on-ups-mid-rise",
         RAISE + step(2, "input", "mains_ok=false") + step(2, "input", "ups_on_battery=true"), 6,
         controller=Fault.MAINS_FAIL),
    Case(10, "manual-release-while-up",
         RAISE + step(5, "input", "manual_release_engaged=true") + step(6, "guard_raise", target="lane-east"), 12,
         rule=Rule.INTERLOCK, inhibit=Inhibit.MANUAL_RELEASE),
    Case(10, "manual-release-mid-rise", RAISE + step(2, "input", "manual_release_engaged=true"), 11,
         rule=Rule.CONTROLLER_FAULT, inhibit=Inhibit.MANUAL_RELEASE),
    Case(11, "estop-mid-rise", RAISE + step(2, "input", "estop_pressed=true"), 5,
         rule=Rule.CONTROLLER_STOPPED, inhibit=Inhibit.ESTOP),
    Case(11, "local-mode-refuses-raise", step(0, "input", "local_mode=true") + RAISE_LATER, 2,
         rule=Rule.INTERLOCK, inhibit=Inhibit.LOCAL_MODE),
    Case(11, "local-mode-mid-rise-then-lower",
         RAISE + step(2, "input", "local_mode=true") + step(5, "guard_lower", target="lane-east"), 14,
         rule=Rule.CONTROLLER_LOCAL, inhibit=Inhibit.LOCAL_MODE),
    Case(12, "reboot-mid-rise", RAISE + step(2, "power_off") + step(2.5, "power_on"), 11,
         rule=Rule.MOTION_TIMEOUT),
    Case(13, "no-response-mid-rise",
         RAISE + step(2, "modbus_fault", "silent=true") + step(5, "modbus_fault", "silent=false"), 7,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(13, "late-response-mid-rise",
         RAISE + step(2, "modbus_fault", "stall_s=1.5") + step(5, "modbus_fault", "stall_s=0"), 7,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(13, "dropped-replies-mid-rise", RAISE + step(2, "modbus_fault", "drop_next_replies=30"), 7,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(13, "crc-errors-mid-rise", RAISE + step(2, "modbus_fault", "corrupt_next_crc=30"), 7,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(13, "wrong-unit-replies-mid-rise", RAISE + step(2, "modbus_fault", "wrong_unit_next=30"), 7,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(13, "truncated-replies-mid-rise", RAISE + step(2, "modbus_fault", "truncate_next=30"), 7,
         rule=Rule.STALE_DURING_RISE, inhibit=Inhibit.STALE_DATA),
    Case(13, "io-board-dead-registers-frozen-mid-rise", RAISE + step(2, "modbus_fault", "frozen=true"), 12,
         rule=Rule.MOTION_TIMEOUT),
    Case(14, "duplicate-raise-after-the-rise", RAISE + step(5, "guard_raise", target="lane-east"), 7,
         rule=Rule.NOT_FROM_STATE),
    Case(14, "raise-arriving-while-lowering",
         RAISE + step(5, "guard_lower", target="lane-east") + step(5.5, "guard_raise", target="lane-east"), 9,
         rule=Rule.NOT_FROM_STATE),
    Case(15, "red-lamp-flasher-buzzer-dead", step(0, "fault", "lamps_failed=0b1101") + RAISE, 6,
         rule=Rule.WARNING_FAILED),
]  # fmt: skip


def test_faults_every_fault_of_the_list_has_a_case() -> None:
    """All fifteen faults of devices.md 3.7 are played below."""
    assert sorted({c.fault for c in CASES}) == list(range(1, 16))


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_faults_every_injected_fault_ends_safe_and_reported(case: Case) -> None:
    """Played against the lane supervisor: never up into presence, no rise going on at the end, and the fault
    reported by the controller (its code read by the supervisor's sensors) or by the supervisor's decision."""
    lane = BusLane()
    lane.play(case.scenario, case.until_s)
    assert lane.into_presence == [], f"moved up into presence at {lane.into_presence}"
    assert lane.state() not in (BollardState.RISING, BollardState.EFO_RISING)
    assert not lane.moving_up
    view = lane.sup.sensors.view(fire_hold_down=False)
    assert case.controller is not None or case.rule is not None
    if case.controller is not None:
        assert view.fault_code == case.controller.name.lower()
    if case.rule is not None:
        decided = [d for d in lane.log if d.rule is case.rule]
        assert decided, f"no {case.rule} decision in {[d.rule.value for d in lane.log]}"
        if case.inhibit is not None:
            assert any(case.inhibit in d.reasons for d in decided), [d.reasons for d in decided]


@pytest.mark.parametrize(
    ("name", "scenario", "end"),
    [
        ("06-slow-within-timeout", step(0, "fault", "slow_factor=2") + RAISE, BollardState.UP),
        ("09-brown-out-within-ride-through",
         RAISE + step(2, "input", "mains_ok=false") + step(2.3, "input", "mains_ok=true"), BollardState.UP),
        ("13-one-exception-04", RAISE + step(2, "modbus_fault", "exception_next=4"), BollardState.UP),
        ("14-duplicate-raises-in-one-poll", RAISE + RAISE + RAISE, BollardState.UP),
        ("14-raise-lower-raise-in-one-poll", RAISE + step(0, "guard_lower", target="lane-east") + RAISE,
         BollardState.UP),
        ("14-raise-and-lower-in-one-poll", RAISE + step(0, "guard_lower", target="lane-east"), BollardState.DOWN),
    ],
)  # fmt: skip
def test_faults_tolerated_disturbances_change_nothing(name: str, scenario: str, end: BollardState) -> None:
    """Disturbances within tolerance: the lane ends where the last command put it, once, with nothing refused
    and no fault."""
    lane = BusLane()
    lane.play(scenario, 8)
    assert lane.state() is end
    assert lane.sim.cycles == (1 if end is BollardState.UP else 0)
    assert lane.sup.sensors.view(fire_hold_down=False).fault_code == "none"
    assert all(d.rule is Rule.ACCEPTED for d in lane.log), [d.rule.value for d in lane.log]
