"""The simulated bollard controller (devices.md 3.7) on an injected clock: motion, its own interlocks, faults."""

from __future__ import annotations

import contextlib

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulators.bollard import BollardSim, BollardState, Fault, Source
from simulators.modbus_server import SimServer


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float, sim: BollardSim, step: float = 0.05) -> None:
        """Move time on in small steps, as polls would, letting the controller act at each."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            sim.tick()


def state(sim: BollardSim) -> BollardState:
    """The controller's state (read through a call: it changes under the type checker's feet)."""
    return sim.state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> BollardSim:
    return BollardSim(clock=clock, rise_s=3.0, lower_s=2.5)


def test_bollard_raise_warns_first_then_rises(sim: BollardSim, clock: FakeClock) -> None:
    """A raise flashes and sounds for pre_warn (1 s) without moving, then rises in 3 s to the upper limit."""
    assert sim.command("cmd_raise")
    clock.advance(0.9, sim)
    assert state(sim) is BollardState.RISING
    assert sim.position == 0
    assert sim.lights & 0b1100 == 0b1100  # flasher and buzzer
    clock.advance(1.6, sim)
    assert 40 <= sim.position <= 60
    clock.advance(2.0, sim)
    assert state(sim) is BollardState.UP
    assert sim.inputs["limit_up"]
    assert not sim.inputs["limit_down"]
    assert sim.cycles == 1
    assert 3000 <= sim.table(4)[5] <= 3050  # last_motion_ms, to the 50 ms step of this clock


@pytest.mark.parametrize(
    "inp",
    ["loop_a_occupied", "loop_b_occupied", "photocell_blocked", "pressure_edge_active", "estop_pressed",
     "fire_input", "manual_release_engaged", "local_mode"],
)  # fmt: skip
def test_bollard_controller_refuses_raise_while_inhibited(sim: BollardSim, inp: str) -> None:
    """Each of the controller's own inhibits refuses a raise and says which."""
    sim.set_input(inp, True)
    assert not sim.command("cmd_raise")
    assert inp in sim.refusals[-1]
    assert sim.position == 0


def test_bollard_local_mode_refuses_remote_only(sim: BollardSim, clock: FakeClock) -> None:
    """In LOCAL the gate-house button still works; Modbus does not."""
    sim.set_input("local_mode", True)
    assert not sim.command("cmd_raise", Source.MODBUS)
    assert sim.command("cmd_raise", Source.LOCAL_BUTTON)


def test_bollard_loop_clear_delay(sim: BollardSim, clock: FakeClock) -> None:
    """A vehicle leaves the loop: raise refused for loop_clear_delay (1 s), accepted after."""
    sim.set_input("loop_a_occupied", True)
    clock.advance(2.0, sim)
    sim.set_input("loop_a_occupied", False)
    clock.advance(0.5, sim)
    assert not sim.command("cmd_raise")
    assert "loop_clear_delay" in sim.refusals[-1]
    clock.advance(0.6, sim)
    assert sim.command("cmd_raise")


def test_bollard_presence_during_rise_reverses_and_gives_up_after_max(sim: BollardSim, clock: FakeClock) -> None:
    """A vehicle during the rise sends the bollard back down; after max_reversals (3) it stays down."""
    for n in range(1, 4):
        assert sim.command("cmd_raise")
        clock.advance(2.0, sim)  # pre-warn, then a second of rising
        assert state(sim) is BollardState.RISING
        assert sim.position > 0
        sim.set_input("pressure_edge_active", True)  # a person on the head
        clock.advance(0.1, sim)
        assert state(sim) is BollardState.LOWERING
        assert sim.reversals == n
        sim.set_input("pressure_edge_active", False)
        clock.advance(3.0, sim)
        assert state(sim) is BollardState.DOWN
        clock.advance(1.1, sim)
    assert sim.fault_code == Fault.TOO_MANY_REVERSALS
    assert not sim.command("cmd_raise")
    assert sim.command("cmd_reset_fault")
    assert sim.command("cmd_raise")


def test_bollard_slow_motion_within_and_beyond_timeout(sim: BollardSim, clock: FakeClock) -> None:
    """Cold oil (twice as slow) still arrives within 8 s; three times as slow is a rise timeout fault."""
    sim.mech.slow_factor = 2.0
    sim.command("cmd_raise")
    clock.advance(7.5, sim)
    assert state(sim) is BollardState.UP
    sim.command("cmd_lower")
    clock.advance(6.0, sim)
    assert state(sim) is BollardState.DOWN
    sim.mech.slow_factor = 3.0
    sim.command("cmd_raise")
    clock.advance(10.0, sim)
    assert state(sim) is BollardState.FAULT
    assert sim.fault_code == Fault.RISE_TIMEOUT
    assert 0 < sim.position < 100


def test_bollard_stuck_limit_is_a_timeout(sim: BollardSim, clock: FakeClock) -> None:
    """An upper limit switch that never closes: the rise times out instead of driving on."""
    sim.mech.limit_up_stuck_open = True
    sim.command("cmd_raise")
    clock.advance(10.0, sim)
    assert sim.fault_code == Fault.RISE_TIMEOUT


def test_bollard_drift_down_while_up_is_a_fault(sim: BollardSim, clock: FakeClock) -> None:
    """A leaking valve after a completed rise: the upper limit opens without a command (fault 4, drift down),
    and the bollard keeps sinking, faulted, until it rests on its lower limit; a reset then finds it DOWN."""
    sim.command("cmd_raise")
    clock.advance(4.5, sim)
    assert state(sim) is BollardState.UP
    sim.mech.drift_down_pct_per_s = 2.0
    clock.advance(1.0, sim)
    assert state(sim) is BollardState.FAULT
    assert sim.fault_code == Fault.DRIFT_DOWN
    assert not sim.inputs["limit_up"]
    assert 97 <= sim.position < 100
    clock.advance(50.0, sim)
    assert sim.position == 0
    assert sim.inputs["limit_down"]
    assert sim.command("cmd_reset_fault")
    assert state(sim) is BollardState.DOWN


def test_bollard_up_limit_opening_while_up_is_drift(sim: BollardSim, clock: FakeClock) -> None:
    """A bouncing (or newly stuck) upper limit switch while UP looks like drift to the controller: fault 4."""
    sim.set_state(BollardState.UP)
    sim.mech.limit_up_stuck_open = True
    clock.advance(0.1, sim)
    assert state(sim) is BollardState.FAULT
    assert sim.fault_code == Fault.DRIFT_DOWN
    assert sim.position == 100


def test_bollard_failed_lamps_read_zero(sim: BollardSim, clock: FakeClock) -> None:
    """Dead red lamp and buzzer (fault 15): the controller drives them, register 14 reads them 0, the rest as
    driven; the rise itself goes on."""
    sim.mech.lamps_failed = 0b1001
    sim.command("cmd_raise")
    clock.advance(0.5, sim)
    assert sim.lights == 0b1101
    assert sim.table(4)[14] == 0b0100
    clock.advance(4.0, sim)
    assert state(sim) is BollardState.UP
    assert sim.table(4)[14] == 0


@pytest.mark.parametrize("trip", [Fault.MOTOR_THERMAL, Fault.HYDRAULIC_PRESSURE_LOW, Fault.LOOP_DETECTOR_FAULT])
def test_bollard_trip_stops_and_holds_until_cleared(sim: BollardSim, clock: FakeClock, trip: Fault) -> None:
    """A condition the controller detects itself, mid-rise: motor off, FAULT with its code; a reset is refused
    while the cause is there and accepted once it is gone."""
    sim.command("cmd_raise")
    clock.advance(2.0, sim)
    sim.mech.trip = trip
    clock.advance(0.1, sim)
    assert (state(sim), sim.fault_code) == (BollardState.FAULT, trip)
    held = sim.position
    clock.advance(2.0, sim)
    assert sim.position == held
    assert not sim.command("cmd_raise")
    assert not sim.command("cmd_reset_fault")
    assert sim.refusals[-1] == "reset: the cause is still there"
    sim.mech.trip = Fault.NONE
    assert sim.command("cmd_reset_fault")
    assert state(sim) is BollardState.STOPPED_MID


def test_bollard_estop_mid_rise_stops_then_lowers(sim: BollardSim, clock: FakeClock) -> None:
    """E-stop during a rise: stopped mid-way; after release, lower brings it down."""
    sim.command("cmd_raise")
    clock.advance(2.0, sim)
    sim.set_input("estop_pressed", True)
    clock.advance(0.1, sim)
    assert state(sim) is BollardState.STOPPED_MID
    held = sim.position
    clock.advance(1.0, sim)
    assert sim.position == held
    sim.set_input("estop_pressed", False)
    assert sim.command("cmd_lower")
    clock.advance(3.0, sim)
    assert state(sim) is BollardState.DOWN


def test_bollard_fire_input_lowers_and_holds(sim: BollardSim, clock: FakeClock) -> None:
    """The panel's hard-wired fire input lowers a raised bollard and refuses raises while it lasts."""
    sim.command("cmd_raise")
    clock.advance(4.5, sim)
    assert state(sim) is BollardState.UP
    sim.set_input("fire_input", True)
    clock.advance(3.0, sim)
    assert state(sim) is BollardState.DOWN
    assert sim.table(4)[13] == Source.FIRE_INPUT
    assert not sim.command("cmd_raise")


def test_bollard_manual_release_falls(sim: BollardSim, clock: FakeClock) -> None:
    """Manual release while up: MANUAL, no motor commands, the bollard sinks."""
    sim.set_state(BollardState.UP)
    sim.set_input("manual_release_engaged", True)
    assert state(sim) is BollardState.MANUAL
    assert not sim.command("cmd_lower")
    clock.advance(6.0, sim)
    assert sim.position == 0
    sim.set_input("manual_release_engaged", False)
    clock.advance(0.1, sim)
    assert state(sim) is BollardState.DOWN


@pytest.mark.parametrize(("behaviour", "after"), [(0, BollardState.UNKNOWN), (1, BollardState.DOWN)])
def test_bollard_power_loss_mid_rise(sim: BollardSim, clock: FakeClock, behaviour: int, after: BollardState) -> None:
    """Power lost mid-rise: 'stay' holds the position and is UNKNOWN after restart until a limit is seen;
    'lower' sinks to the lower limit and knows it is down."""
    sim.holding[107] = behaviour
    sim.command("cmd_raise")
    clock.advance(2.5, sim)
    sim.power_off()
    assert sim.faults.silent
    clock.advance(5.0, sim)
    sim.power_on()
    assert state(sim) is after
    if after is BollardState.UNKNOWN:
        assert not sim.command("cmd_raise")
        assert sim.command("cmd_lower")
        clock.advance(3.0, sim)
        assert state(sim) is BollardState.DOWN


def test_bollard_efo_only_local_or_key_enabled(sim: BollardSim, clock: FakeClock) -> None:
    """EFO over Modbus is refused unless the local key enabled it; the local button works, without pre-warn."""
    assert not sim.command("cmd_efo", Source.MODBUS)
    assert "not enabled" in sim.refusals[-1]
    sim.set_input("efo_local_button", True)
    assert state(sim) is BollardState.EFO_RISING
    clock.advance(1.6, sim)
    assert state(sim) is BollardState.UP


def test_bollard_efo_still_inhibited_by_presence(sim: BollardSim) -> None:
    """Loops and photocell inhibit even an emergency rise."""
    sim.set_efo_key(True)
    sim.set_input("photocell_blocked", True)
    assert not sim.command("cmd_efo", Source.MODBUS)
    assert "photocell_blocked" in sim.refusals[-1]


def test_bollard_controller_layer_can_be_made_to_fail(sim: BollardSim, clock: FakeClock) -> None:
    """With its reversal broken (a test of the gateway's layer), the controller rises into an occupied loop."""
    sim.mech.ignore_presence = True
    sim.command("cmd_raise")
    clock.advance(1.5, sim)
    sim.set_input("loop_b_occupied", True)
    clock.advance(3.0, sim)
    assert state(sim) is BollardState.UP


async def test_bollard_commands_and_settings_over_modbus_tcp() -> None:
    """Coil writes command the controller; holding writes are refused while moving (06) or read-only (03)."""
    sim = BollardSim(rise_s=0.3)
    sim.holding[102] = 0  # no pre-warn: this test is about the wire
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(SimServer.tcp({1: sim}))
        host, port = server.address
        client = AsyncModbusTcpClient(host, port=port, timeout=2)
        await client.connect()
        stack.callback(client.close)
        reply = await client.write_coil(0, True, device_id=1)
        assert not reply.isError()
        assert state(sim) is BollardState.RISING
        busy = await client.write_register(104, 5, device_id=1)
        assert busy.isError()
        assert busy.exception_code == 6
        read_only = await client.write_register(105, 1, device_id=1)
        assert read_only.isError()
        assert read_only.exception_code == 3
        coils = await client.read_coils(0, count=5, device_id=1)
        assert coils.bits[:5] == [False] * 5  # requests read back 0 once accepted
