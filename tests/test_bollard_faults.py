"""The fifteen faults of devices.md 3.7, injected from scenario text.

Part one plays every scenario action that injects a fault into a started simulated site and reads the effect back
over Modbus TCP on loopback with the gateway's own bus driver.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from drivers.errors import DeviceException, DeviceTimeout
from drivers.modbus import Function, ModbusBus, RequestPolicy
from simulators.bollard import BollardSim, BollardState, Fault, MotionFaults
from simulators.devices import Faults
from simulators.scenario import ACTIONS, VALUES, ScenarioError, Step, parse_scenario
from simulators.site import SimulatedSite

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
