"""Register images of simulated devices, written from shared/domain/devices.md (sections 1.5 and 3.7).

Each model keeps physical state (smoke in the chamber, a fire on a panel, where the bollard is) and answers Modbus
reads from it. Faults are knobs on the model so that tests and scenario files can inject them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum


class ModbusExceptionCode(IntEnum):
    """Exception codes a simulated device can answer with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_FAILURE = 4
    BUSY = 6


@dataclass
class Faults:
    """Modbus-level faults of one simulated device.

    `silent`: the device does not answer at all (absent or dead on an RS-485 bus).
    `drop_next_replies`: the next N requests get no reply. `corrupt_next_crc`: the next N replies carry a wrong CRC.
    `stall_s`: every reply is delayed by this long. `exception_next`: the next request gets this exception code.
    `wrong_unit_next`: the next N replies carry another unit id, with a good CRC (a second device answering, or
    a misconfigured one; on TCP the MBAP header's unit). `truncate_next`: the next N replies lose their last three
    bytes. Both on RTU and TCP.
    `frozen`: the device answers, but always with the values it had when this was set (its I/O board is dead,
    its event counter does not move).
    """

    silent: bool = False
    drop_next_replies: int = 0
    corrupt_next_crc: int = 0
    stall_s: float = 0.0
    exception_next: int | None = None
    wrong_unit_next: int = 0
    truncate_next: int = 0
    frozen: bool = False


class SimDevice:
    """Base class: a table of registers per function, answered from `registers()`."""

    model = "device"

    def __init__(self) -> None:
        self.faults = Faults()
        # FC43/14 Read Device Identification objects (0 vendor name, 1 product code, 2 revision, ...), for the
        # devices that have it; None: that function gets exception 01, as on cheap RS-485 devices.
        self.identity: dict[int, str] | None = None
        self.requests = 0
        self._frozen: dict[int, dict[int, int]] = {}

    def table(self, function: int) -> dict[int, int]:
        """Return the values this device answers for a read function (1-4), address -> value."""
        return {}

    def write(self, function: int, address: int, values: Sequence[int]) -> ModbusExceptionCode | None:
        """Take a write request (FC05/06/15/16); most simulated devices have nothing writable."""
        return ModbusExceptionCode.ILLEGAL_FUNCTION

    def read(self, function: int, address: int, count: int) -> list[int] | ModbusExceptionCode:
        """Answer a read request, or an exception code for addresses the map does not have."""
        if self.faults.frozen:
            if function not in self._frozen:
                self._frozen[function] = dict(self.table(function))
            table = self._frozen[function]
        else:
            self._frozen.clear()
            table = self.table(function)
        if not table:
            return ModbusExceptionCode.ILLEGAL_FUNCTION
        values = []
        for a in range(address, address + count):
            if a not in table:
                return ModbusExceptionCode.ILLEGAL_ADDRESS
            values.append(table[a] & 0xFFFF)
        return values


def bits(**flags: tuple[int, bool]) -> int:
    """A register word from named (bit, on) pairs."""
    word = 0
    for bit, on in flags.values():
        if on:
            word |= 1 << bit
    return word


@dataclass
class PanelState:
    """What a fire alarm control panel knows of its site."""

    fire: bool = False
    fault: bool = False
    shielded: bool = False
    supervisory: bool = False
    test_mode: bool = False
    main_power_fault: bool = False
    backup_power_fault: bool = False
    bus_fault: bool = False
    manual_mode: bool = False
    fire_points: set[int] = field(default_factory=set)
    prealarm_points: set[int] = field(default_factory=set)
    fault_points: set[int] = field(default_factory=set)
    disabled_points: set[int] = field(default_factory=set)
    first_alarm_point: int | None = None


class FirePanelSim(SimDevice):
    """Fire alarm control panel, summary block of map 1.0 (input registers 0-17).

    A fire latches until `reset()`, and reset clears it only once no point is in fire, as on a real panel.
    """

    model = "fire_panel"

    def __init__(self, loops: int = 2, points_per_loop: int = 242) -> None:
        super().__init__()
        self.identity = {0: "campus-edge simulators", 1: "SIM-FACP", 2: "1.0"}
        self.state = PanelState()
        self.loops = loops
        self.points_per_loop = points_per_loop
        self.event_counter = 0
        self.map_version = 0x0100
        self._reset_flag = False
        # Some panels pulse their reset bit too briefly for a poll to see: then only the first-alarm point
        # going back to "none" tells of the reset.
        self.shows_reset_bit = True

    def _changed(self) -> None:
        self.event_counter = (self.event_counter + 1) & 0xFFFF

    def alarm_point(self, point: int) -> None:
        """A detector or call point on the panel's loop goes into fire."""
        s = self.state
        s.fire_points.add(point)
        s.fire = True
        if s.first_alarm_point is None:
            s.first_alarm_point = point
        self._reset_flag = False
        self._changed()

    def clear_point(self, point: int) -> None:
        """The condition at a point goes away; the panel's fire stays latched until reset."""
        self.state.fire_points.discard(point)
        self._changed()

    def reset(self) -> bool:
        """Panel reset (复位): clears latched fire if no point is still in fire. Returns whether it did."""
        s = self.state
        if s.fire_points:
            return False
        s.fire = False
        s.first_alarm_point = None
        self._reset_flag = True
        self._changed()
        return True

    def set(self, **flags: bool) -> None:
        """Set panel-level flags (fault, shielded, supervisory, main_power_fault, ...)."""
        for name, value in flags.items():
            if not hasattr(self.state, name) or name.endswith("_points"):
                raise AttributeError(f"fire panel has no flag {name!r}")
            setattr(self.state, name, value)
        self._changed()

    def status_word(self) -> int:
        """The GB 26875 system status word (register 1)."""
        s = self.state
        return bits(
            normal=(0, not s.test_mode),
            fire=(1, s.fire),
            fault=(2, s.fault or bool(s.fault_points)),
            shielded=(3, s.shielded or bool(s.disabled_points)),
            supervisory=(4, s.supervisory),
            main=(8, s.main_power_fault),
            backup=(9, s.backup_power_fault),
            bus=(10, s.bus_fault),
            manual=(11, s.manual_mode),
            reset=(13, self._reset_flag and self.shows_reset_bit),
        )

    def table(self, function: int) -> dict[int, int]:
        if function != 4:
            return {}
        s = self.state
        return {
            0: self.map_version,
            1: self.status_word(),
            2: self.event_counter,
            3: len(s.fire_points) if s.fire_points else (1 if s.fire else 0),
            4: len(s.fault_points) + (1 if s.fault else 0),
            5: len(s.disabled_points),
            6: 1 if s.supervisory else 0,
            7: len(s.prealarm_points),
            8: 0xFFFF if s.first_alarm_point is None else s.first_alarm_point,
            9: 0,
            10: 0,
            11: 0,
            12: 0,
            13: 0,
            14: 0,
            15: 0,
            16: self.loops,
            17: self.points_per_loop,
        }


class SmokeDetectorSim(SimDevice):
    """RS-485 point smoke detector, map 1.0 (input registers 0-10, mirrored for FC03).

    Alarm when obscuration reaches the threshold, pre-alarm from 70 % of it; the alarm latches until reset
    (holding register 50 command 1 on the real device; `reset()` here).
    """

    model = "smoke_detector"

    def __init__(self, threshold_pct_per_m: float = 3.2) -> None:
        super().__init__()
        self.obscuration = 0.0  # %/m
        self.temperature = 22.5  # Cel
        self.supply_v = 24.0
        self.battery: int | None = None  # None: mains only
        self.drift = 5
        self.threshold = threshold_pct_per_m
        self.flags: dict[str, bool] = {
            "fault": False,
            "low_battery": False,
            "dirty_chamber": False,
            "tamper": False,
            "self_test": False,
            "silenced": False,
            "end_of_life": False,
            "temperature_fault": False,
            "chamber_fault": False,
        }
        self.latched_alarm = False
        self.event_counter = 0
        self.uptime_h = 100
        self._last_status = self.status_word()

    def set_smoke(self, obscuration_pct_per_m: float) -> None:
        """Set the smoke in the chamber, in %/m obscuration."""
        self.obscuration = obscuration_pct_per_m
        if obscuration_pct_per_m >= self.threshold:
            self.latched_alarm = True
        self._note_change()

    def set(self, **flags: bool) -> None:
        """Set status flags by name (low_battery, dirty_chamber, tamper, fault, ...)."""
        for name, value in flags.items():
            if name not in self.flags:
                raise AttributeError(f"smoke detector has no flag {name!r}")
            self.flags[name] = value
        self._note_change()

    def reset(self) -> None:
        """Reset the latched alarm (it re-latches at once while smoke is still above the threshold)."""
        self.latched_alarm = self.obscuration >= self.threshold
        self._note_change()

    def _note_change(self) -> None:
        word = self.status_word()
        if word != self._last_status:
            self._last_status = word
            self.event_counter = (self.event_counter + 1) & 0xFFFF

    def status_word(self) -> int:
        """Register 0: bit 0 fire, 1 pre-alarm, 2 fault, 3 low battery, 4 dirty, 5 tamper, 6 test, 7 silenced,
        8 end of life, 9 temperature sensor fault, 10 chamber fault."""
        f = self.flags
        prealarm = not self.latched_alarm and self.obscuration >= 0.7 * self.threshold
        return bits(
            fire=(0, self.latched_alarm),
            pre=(1, prealarm),
            fault=(2, f["fault"]),
            batt=(3, f["low_battery"]),
            dirty=(4, f["dirty_chamber"]),
            tamper=(5, f["tamper"]),
            test=(6, f["self_test"]),
            hush=(7, f["silenced"]),
            eol=(8, f["end_of_life"]),
            temp=(9, f["temperature_fault"]),
            chamber=(10, f["chamber_fault"]),
        )

    def table(self, function: int) -> dict[int, int]:
        if function not in (3, 4):
            return {}
        return {
            0: self.status_word(),
            1: round(self.obscuration * 100),
            2: round(self.temperature * 10) & 0xFFFF,
            3: round(self.supply_v * 1000),
            4: 0xFFFF if self.battery is None else self.battery,
            5: self.drift,
            6: round(self.threshold * 100),
            7: self.event_counter,
            8: self.uptime_h,
            9: 0x2101,
            10: 0x0103,
        }


class AnalogModuleSim(SimDevice):
    """18-channel analog input module: input registers 0-8 and 16-24, map of profile `analog_module`.

    With `churn`, every channel moves on every read, so each poll yields 18 changed readings: the load of a busy
    site compressed into few devices, for benchmarks.
    """

    model = "analog_module"
    ADDRESSES = (*range(9), *range(16, 25))

    def __init__(self, churn: bool = False) -> None:
        super().__init__()
        self.churn = churn
        self.values = dict.fromkeys(self.ADDRESSES, 1200)

    def table(self, function: int) -> dict[int, int]:
        if function != 4:
            return {}
        if self.churn:
            for a in self.ADDRESSES:
                self.values[a] = 400 + (self.values[a] - 400 + 7 + a) % 1600
        return self.values
