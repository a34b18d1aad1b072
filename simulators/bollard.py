"""A rising-bollard controller as devices.md 3.7 proposes it: commands, motion, its own interlocks, faults.

One controller drives one lane. Time comes from an injectable clock, so tests step through a rise in
milliseconds of real time. The model is evaluated lazily: every Modbus read or write (and `tick()`) first brings
it up to the clock's present. `set_state()` and `set_input()` keep working as before for scenarios that only
need a status to report; motion happens only after a command.

What the controller itself refuses or reverses is layer 1 of the safety order (DESIGN.md): the gateway's own
interlocks sit on top and must hold even if this layer failed, which tests can arrange with `faults`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from simulators.devices import ModbusExceptionCode, SimDevice, bits

# Holding registers (FC03/06/16), address -> (name, default, writable over Modbus)
HOLDING: dict[int, tuple[str, int, bool]] = {
    100: ("rise_timeout_ms", 8000, True),
    101: ("lower_timeout_ms", 6000, True),
    102: ("pre_warn_ms", 1000, True),
    103: ("loop_clear_delay_ms", 1000, True),
    104: ("max_reversals", 3, True),
    105: ("efo_remote_enable", 0, False),  # only the local key switch sets it
    106: ("auto_rerise_s", 0, True),
    107: ("power_loss_behaviour", 0, False),  # 0 stay, 1 lower: the hardware's, read-only
    108: ("comms_watchdog_s", 0, True),
    109: ("map_lock", 0, True),
}
RIDE_THROUGH_S = 0.5  # hold-up capacitors bridge dips up to this long (devices.md 3.4: 250-500 ms)
COILS = ("cmd_raise", "cmd_lower", "cmd_stop", "cmd_reset_fault", "cmd_efo")


class BollardState(IntEnum):
    """Controller state register (input register 1)."""

    UNKNOWN = 0
    DOWN = 1
    RISING = 2
    UP = 3
    LOWERING = 4
    STOPPED_MID = 5
    FAULT = 6
    MANUAL = 7
    EFO_RISING = 8


_MOVING = frozenset({BollardState.RISING, BollardState.LOWERING, BollardState.EFO_RISING})
_RAISED_OR_RAISING = frozenset(
    {BollardState.UP, BollardState.RISING, BollardState.STOPPED_MID, BollardState.EFO_RISING}
)


class Fault(IntEnum):
    """Input register 2."""

    NONE = 0
    RISE_TIMEOUT = 1
    LOWER_TIMEOUT = 2
    BOTH_LIMITS = 3
    DRIFT_DOWN = 4
    MOTOR_OVERCURRENT = 5
    MOTOR_THERMAL = 6
    HYDRAULIC_PRESSURE_LOW = 7
    OIL_LEVEL_LOW = 8
    LOOP_DETECTOR_FAULT = 9
    PHOTOCELL_FAULT = 10
    MAINS_FAIL = 11
    UPS_BATTERY_LOW = 12
    INTERNAL_COMMS = 13
    TOO_MANY_REVERSALS = 14


class Source(IntEnum):
    """Input register 13: who gave the last command."""

    NONE = 0
    LOCAL_BUTTON = 1
    MODBUS = 2
    FIRE_INPUT = 3
    EFO = 4
    AUTO_RERISE = 5


@dataclass(slots=True)
class MotionFaults:
    """Faults of the controller's mechanics and field wiring to inject (devices.md 3.7, list of 15). Modbus-level
    ones are in `SimDevice.faults`; scenario files set both by field name (simulators/scenario.py)."""

    slow_factor: float = 1.0  # >1: low oil, cold oil, worn pump; beyond the timeout it faults
    limit_up_stuck_open: bool = False
    limit_down_stuck_open: bool = False
    both_limits: bool = False
    drift_down_pct_per_s: float = 0.0  # a leaking valve: sinks whenever not driven; leaving limit_up faults
    overcurrent_on_motion: bool = False
    ignore_presence: bool = False  # the controller's own presence interlocks fail: it starts a rise and keeps
    # rising whatever its loops, photocell and pressure edge say (tests of the gateway's layer alone)
    # Outputs whose lamp or buzzer is dead, as bits of input register 14 (bit 0 red, 1 green/yellow, 2 flasher,
    # 3 buzzer): the controller still drives them, but the register reports lamp current, so they read 0.
    lamps_failed: int = 0
    # A condition the controller detects itself and trips on (motor thermal, hydraulic pressure low, oil level
    # low, loop detector or photocell fault output, ...): FAULT with this code, motor off, no reset until cleared.
    trip: Fault = Fault.NONE


class BollardSim(SimDevice):
    """Bollard controller, map 1.0: coils 0-4, discrete inputs 0-12, input registers 0-14, holding 100-109."""

    model = "bollard_controller"

    INPUTS = (
        "limit_up",
        "limit_down",
        "loop_a_occupied",
        "loop_b_occupied",
        "photocell_blocked",
        "pressure_edge_active",
        "estop_pressed",
        "mains_ok",
        "ups_on_battery",
        "local_mode",
        "manual_release_engaged",
        "efo_local_button",
        "fire_input",
    )
    PRESENCE = ("loop_a_occupied", "loop_b_occupied", "photocell_blocked", "pressure_edge_active")

    def __init__(self, clock: Callable[[], float] = time.monotonic, rise_s: float = 3.0, lower_s: float = 2.5) -> None:
        super().__init__()
        self.identity = {0: "campus-edge simulators", 1: "SIM-BOLLARD", 2: "1.0"}
        self.clock = clock
        self.rise_s = rise_s
        self.lower_s = lower_s
        self.efo_rise_s = rise_s / 2
        self.inputs = dict.fromkeys(self.INPUTS, False)
        self.inputs["limit_down"] = True
        self.inputs["mains_ok"] = True
        self.holding = {addr: default for addr, (_n, default, _w) in HOLDING.items()}
        self.mech = MotionFaults()
        self.state = BollardState.DOWN
        self.fault_code = 0
        self.position = 0.0
        self.event_counter = 0
        self.cycles = 0
        self.reversals = 0
        self.lights = 0b0010
        self.last_source = Source.NONE
        self.last_motion_ms = 4200
        self.powered = True
        self.refusals: list[str] = []  # why commands were refused, newest last
        self._now = clock()
        self._motion_started: float | None = None  # None: no motion of our own (state set from outside)
        self._prewarn_until: float | None = None
        self._loop_cleared_at: float | None = None
        self._seek_limit = False  # after power returns: UNKNOWN until a limit switch is seen
        self._mains_lost_at: float | None = None

    # -- setting things from tests and scenarios -----------------------------------------------------------------

    def set_state(self, state: BollardState, position: int | None = None) -> None:
        """Put the controller in a state, without motion; limit switches follow the end positions."""
        self._motion_started = None
        self._prewarn_until = None
        self.state = state
        if position is not None:
            self.position = float(position)
        elif state is BollardState.UP:
            self.position = 100.0
        elif state is BollardState.DOWN:
            self.position = 0.0
        if state is BollardState.UP:
            self.cycles += 1
        self._limits()
        self._lights()
        self._changed()

    def set_input(self, name: str, value: bool) -> None:
        """Set a field input (loop, photocell, e-stop, local key, fire input, ...)."""
        if name not in self.inputs:
            raise AttributeError(f"bollard controller has no input {name!r}")
        self.tick()
        was = self._presence()
        self.inputs[name] = value
        if name in ("loop_a_occupied", "loop_b_occupied") and not self._loop_occupied() and was:
            self._loop_cleared_at = self._now
        self._changed()
        self.tick()

    def set_efo_key(self, enabled: bool) -> None:
        """The local key switch that allows the EFO coil (holding register 105)."""
        self.holding[105] = int(enabled)

    def power_off(self) -> None:
        """Mains and UPS gone: the controller stops answering; the hydraulics do what the hardware does."""
        self.tick()
        self.powered = False
        self.faults.silent = True
        self._motion_started = None
        self._prewarn_until = None
        if self.holding[107] == 1:
            self.position = 0.0  # lowers under gravity
        self._limits()

    def power_on(self) -> None:
        """Back: the state is unknown until a limit switch is seen."""
        self.powered = True
        self.faults.silent = False
        self._now = self.clock()
        self.state = BollardState.UNKNOWN
        self._seek_limit = True
        self._limits()
        self._changed()

    # -- commands ------------------------------------------------------------------------------------------------

    def command(self, name: str, source: Source = Source.MODBUS) -> bool:
        """Carry out a command as the controller would; False (reason in `refusals`) when it refuses."""
        self.tick()
        if not self.powered:
            return self._refuse(f"{name}: no power")
        self.last_source = source
        ok = {
            "cmd_raise": self._raise,
            "cmd_lower": self._lower,
            "cmd_stop": self._stop,
            "cmd_reset_fault": self._reset,
            "cmd_efo": self._efo,
        }[name](source)
        self._changed()
        return ok

    def _refuse(self, why: str) -> bool:
        self.refusals.append(why)
        return False

    def raise_inhibits(self, source: Source) -> list[str]:
        """The controller's own reasons not to start a rise (the inhibit bits, and the loop clear delay)."""
        why = [] if self.mech.ignore_presence else [name for name in self.PRESENCE if self.inputs[name]]
        clearing = self._loop_cleared_at is not None and self._now - self._loop_cleared_at < self.holding[103] / 1000
        if clearing and not self.mech.ignore_presence:
            why.append("loop_clear_delay")
        why += [name for name in ("estop_pressed", "fire_input", "manual_release_engaged") if self.inputs[name]]
        if self.inputs["local_mode"] and source is Source.MODBUS:
            why.append("local_mode")
        if self.state is BollardState.FAULT or self.fault_code:
            why.append("fault")
        return why

    def _raise(self, source: Source) -> bool:
        why = self.raise_inhibits(source)
        if why:
            return self._refuse("raise: " + ", ".join(why))
        if self.state not in (BollardState.DOWN, BollardState.STOPPED_MID):
            return self._refuse(f"raise: not from {self.state.name}")
        self.state = BollardState.RISING
        self._prewarn_until = self._now + self.holding[102] / 1000
        self._motion_started = self._prewarn_until
        self._lights()
        return True

    def _lower(self, source: Source) -> bool:
        if self.inputs["local_mode"] and source is Source.MODBUS:
            return self._refuse("lower: local_mode")
        if self.state in (BollardState.FAULT, BollardState.MANUAL) or self.inputs["manual_release_engaged"]:
            return self._refuse(f"lower: not from {self.state.name}")
        if self.state is BollardState.DOWN:
            return True
        self._start_lowering()
        return True

    def _stop(self, _source: Source) -> bool:
        if self.state in _MOVING:
            self._halt(BollardState.STOPPED_MID)
        return True

    def _reset(self, _source: Source) -> bool:
        if self.state is not BollardState.FAULT and not self.fault_code:
            return True
        if (
            self.mech.both_limits
            or self.mech.trip is not Fault.NONE
            or (self.mech.overcurrent_on_motion and self._motion_started is not None)
        ):
            return self._refuse("reset: the cause is still there")
        self.fault_code = 0
        self.reversals = 0
        self.state = BollardState.UNKNOWN
        self._settle_unknown()
        if self.state is BollardState.UNKNOWN:
            self.state = BollardState.STOPPED_MID
        self._lights()
        return True

    def _efo(self, source: Source) -> bool:
        if source is Source.MODBUS and not self.holding[105]:
            return self._refuse("efo: remote EFO is not enabled by the local key")
        if self.state is not BollardState.DOWN:
            return self._refuse(f"efo: not from {self.state.name}")
        presence = [name for name in self.PRESENCE if self.inputs[name]]
        if presence:  # loops and photocell still inhibit an emergency rise [S53]
            return self._refuse("efo: " + ", ".join(presence))
        self.state = BollardState.EFO_RISING
        self._prewarn_until = None
        self._motion_started = self._now
        self._lights()
        return True

    # -- the clock -----------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Bring the model up to the clock's present."""
        now = self.clock()
        if not self.powered:
            self._now = now
            return
        dt = max(0.0, now - self._now)
        self._now = now
        if self.inputs["efo_local_button"] and self.state is BollardState.DOWN:
            self.inputs["efo_local_button"] = False  # a push button: one press, one command
            self.command("cmd_efo", Source.EFO)
        self._mains()
        if self.mech.both_limits and self.state is not BollardState.FAULT:
            self._halt(BollardState.FAULT, Fault.BOTH_LIMITS)
        if self.mech.trip is not Fault.NONE and self.state is not BollardState.FAULT:
            self._halt(BollardState.FAULT, self.mech.trip)
        if self.inputs["manual_release_engaged"] and self.state not in (BollardState.MANUAL, BollardState.FAULT):
            self._halt(BollardState.MANUAL)  # a fault stays a fault until reset, released or not
        if self.state is BollardState.FAULT and self.inputs["manual_release_engaged"]:
            self.position = max(0.0, self.position - 100 * dt / (self.lower_s * 2))  # the valve is open: it sinks
        if self.state is BollardState.MANUAL:
            self.position = max(0.0, self.position - 100 * dt / (self.lower_s * 2))
            if not self.inputs["manual_release_engaged"] and self.position <= 0:
                self.state = BollardState.DOWN
        elif self.inputs["fire_input"] and self.state in _RAISED_OR_RAISING:
            self.last_source = Source.FIRE_INPUT
            self._start_lowering()
        elif self._motion_started is None:
            self._at_rest(dt)
        elif self.state in (BollardState.RISING, BollardState.EFO_RISING):
            self._rising(dt)
        elif self.state is BollardState.LOWERING:
            self._lowering(dt)
        if self.state in _MOVING and self.inputs["estop_pressed"]:
            self._halt(BollardState.STOPPED_MID)
        self._limits()
        self._lights()

    def _at_rest(self, dt: float) -> None:
        """Nothing driven (at an end, stopped, faulted, or a state set from outside): only a leaking valve moves the
        bollard, down. An upper limit that opens while UP without a command is a fault (code 4, drift down)."""
        held_up = self.state is BollardState.UP and self.inputs["limit_up"]
        if self.mech.drift_down_pct_per_s > 0:
            self.position = max(0.0, self.position - self.mech.drift_down_pct_per_s * dt)
        self._limits()
        if held_up and not self.inputs["limit_up"]:
            self._halt(BollardState.FAULT, Fault.DRIFT_DOWN)

    def _mains(self) -> None:
        """Mains lost longer than the ride-through: fault code 11 while on the UPS (motion goes on, raises are
        refused as for any fault code); it clears by itself when the mains return. Dips shorter than the
        ride-through are bridged and not reported (devices.md 3.4)."""
        if self.inputs["mains_ok"]:
            self._mains_lost_at = None
            if self.fault_code == Fault.MAINS_FAIL:
                self.fault_code = 0
                self._changed()
            return
        if self._mains_lost_at is None:
            self._mains_lost_at = self._now
        if self._now - self._mains_lost_at >= RIDE_THROUGH_S and self.fault_code == 0:
            self.fault_code = int(Fault.MAINS_FAIL)
            self._changed()

    def _rising(self, dt: float) -> None:
        assert self._motion_started is not None
        if self._prewarn_until is not None and self._now < self._prewarn_until:
            return  # lights and buzzer first; nothing moves yet
        if not self.mech.ignore_presence and any(self.inputs[name] for name in self.PRESENCE):
            self.reversals += 1
            self._start_lowering()
            return
        if self.mech.overcurrent_on_motion:
            self._halt(BollardState.FAULT, Fault.MOTOR_OVERCURRENT)
            return
        seconds = (self.efo_rise_s if self.state is BollardState.EFO_RISING else self.rise_s) * self.mech.slow_factor
        moved = min(dt, self._now - self._motion_started)
        self.position = min(100.0, self.position + 100 * moved / seconds)
        if self.position >= 100 and not self.mech.limit_up_stuck_open:
            self.last_motion_ms = int((self._now - self._motion_started) * 1000)
            self.cycles += 1
            self.reversals = 0
            self._halt(BollardState.UP)
        elif self._now - self._motion_started > self.holding[100] / 1000:
            self._halt(BollardState.FAULT, Fault.RISE_TIMEOUT)

    def _lowering(self, dt: float) -> None:
        assert self._motion_started is not None
        self.position = max(0.0, self.position - 100 * dt / (self.lower_s * self.mech.slow_factor))
        if self.position <= 0 and not self.mech.limit_down_stuck_open:
            self.last_motion_ms = int((self._now - self._motion_started) * 1000)
            self._halt(BollardState.DOWN)
            if self.reversals >= self.holding[104]:
                self.fault_code = Fault.TOO_MANY_REVERSALS  # stays down; a reset and a new command are needed
        elif self._now - self._motion_started > self.holding[101] / 1000:
            self._halt(BollardState.FAULT, Fault.LOWER_TIMEOUT)

    def _start_lowering(self) -> None:
        self.state = BollardState.LOWERING
        self._prewarn_until = None
        self._motion_started = self._now

    def _halt(self, state: BollardState, fault: Fault | None = None) -> None:
        self.state = state
        self._motion_started = None
        self._prewarn_until = None
        if fault is not None:
            self.fault_code = int(fault)
        self._changed()

    def _settle_unknown(self) -> None:
        if self.inputs["limit_down"]:
            self.state = BollardState.DOWN
        elif self.inputs["limit_up"]:
            self.state = BollardState.UP

    def _limits(self) -> None:
        both = self.mech.both_limits
        self.inputs["limit_up"] = both or (self.position >= 100 and not self.mech.limit_up_stuck_open)
        self.inputs["limit_down"] = both or (self.position <= 0 and not self.mech.limit_down_stuck_open)
        if self.state is BollardState.UNKNOWN and self._seek_limit:
            self._settle_unknown()
            self._seek_limit = self.state is BollardState.UNKNOWN

    def _lights(self) -> None:
        """The outputs the controller drives: bit 0 red, 1 green/yellow, 2 flasher, 3 buzzer (devices.md 3.5: red
        unless down). Input register 14 reports them by lamp current, without those in `mech.lamps_failed`."""
        moving = self.state in _MOVING
        self.lights = 0b0010 if self.state is BollardState.DOWN else 0b0001 | (0b1100 if moving else 0)

    def _loop_occupied(self) -> bool:
        return self.inputs["loop_a_occupied"] or self.inputs["loop_b_occupied"]

    def _presence(self) -> bool:
        return self._loop_occupied()

    def _changed(self) -> None:
        self.event_counter = (self.event_counter + 1) & 0xFFFF

    # -- Modbus --------------------------------------------------------------------------------------------------

    def inhibit_flags(self) -> int:
        """Input register 3: bit 0 loop, 1 photocell, 2 pressure edge, 3 e-stop, 4 local, 5 fault, 6 fire, 7 manual."""
        i = self.inputs
        return bits(
            loop=(0, i["loop_a_occupied"] or i["loop_b_occupied"]),
            photo=(1, i["photocell_blocked"]),
            edge=(2, i["pressure_edge_active"]),
            estop=(3, i["estop_pressed"]),
            local=(4, i["local_mode"]),
            fault=(5, self.state is BollardState.FAULT),
            fire=(6, i["fire_input"]),
            manual=(7, i["manual_release_engaged"]),
        )

    def table(self, function: int) -> dict[int, int]:
        self.tick()
        if function == 1:
            return dict.fromkeys(range(len(COILS)), 0)  # requests read back 0 once accepted
        if function == 2:
            return {n: int(self.inputs[name]) for n, name in enumerate(self.INPUTS)}
        if function == 3:
            return dict(self.holding)
        if function != 4:
            return {}
        return {
            0: 0x0100,
            1: int(self.state),
            2: self.fault_code,
            3: self.inhibit_flags(),
            4: round(self.position),
            5: self.last_motion_ms,
            6: self.cycles & 0xFFFF,
            7: self.cycles >> 16,
            8: self.reversals,
            9: 0,
            10: 250,
            11: 240,
            12: self.event_counter,
            13: int(self.last_source),
            14: self.lights & ~self.mech.lamps_failed,
        }

    def write(self, function: int, address: int, values: Sequence[int]) -> ModbusExceptionCode | None:
        """FC05/15 command coils (a 1 is a request), FC06/16 holding registers (not while moving)."""
        self.tick()
        if function in (5, 15):
            if address + len(values) > len(COILS):
                return ModbusExceptionCode.ILLEGAL_ADDRESS
            for offset, value in enumerate(values):
                if value:
                    self.command(COILS[address + offset], Source.MODBUS)
            return None
        if function in (6, 16):
            moving = self.state in _MOVING
            for offset in range(len(values)):
                entry = HOLDING.get(address + offset)
                if entry is None:
                    return ModbusExceptionCode.ILLEGAL_ADDRESS
                if not entry[2]:
                    return ModbusExceptionCode.ILLEGAL_VALUE
            if moving:
                return ModbusExceptionCode.BUSY
            for offset, value in enumerate(values):
                self.holding[address + offset] = value & 0xFFFF
            return None
        return ModbusExceptionCode.ILLEGAL_FUNCTION
