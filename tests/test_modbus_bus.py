"""The Modbus bus driver against simulated devices, over TCP and over a pseudo-terminal RTU line."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from drivers.device import ModbusDevice, ProfileMismatch
from drivers.errors import DeviceException, DeviceTimeout
from drivers.modbus import RequestPolicy, rtu_frame_gap_s
from drivers.profile import Quality, load_profile
from simulators.bollard import BollardSim, BollardState
from simulators.devices import FirePanelSim, SmokeDetectorSim
from tests.conftest import open_sim_bus

TRANSPORTS = ["tcp", "rtu-pty"]
FAST = RequestPolicy(timeout_s=0.25, retries=1)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_reads_panel_fire_through_profile(transport: str, tmp_path: Path) -> None:
    """A panel fire set in the simulator is decoded as fire by the fire_panel profile."""
    panel = FirePanelSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        dev = ModbusDevice("facp-1", bus, 1, load_profile("fire_panel"), FAST)
        assert (await dev.read())["fire"].value is False
        panel.alarm_point(7)
        values = await dev.read()
        assert values["fire"].value is True
        assert values["first_alarm_point"].value == 7
        assert values["fire_count"].value == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_silent_unit_times_out_with_named_error(transport: str, tmp_path: Path) -> None:
    """An absent unit gets no reply at all (no exception frame), and the error names bus, unit and register."""
    det = SmokeDetectorSim()
    det.faults.silent = True
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {12: det}, tmp_path, stack)
        with pytest.raises(DeviceTimeout) as err:
            await bus.read(12, 4, 0, 11, RequestPolicy(0.1, 2))
        assert str(err.value) == "bus line unit 12: FC04 register 0: no reply within 0.1 s"
        assert bus.stats[12].requests == 3
        assert bus.stats[12].timeouts == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_unknown_unit_is_silent(transport: str, tmp_path: Path) -> None:
    """A unit id nobody has is silent, as on a real RS-485 line (pymodbus alone would answer for it)."""
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: FirePanelSim()}, tmp_path, stack)
        with pytest.raises(DeviceTimeout):
            await bus.read(99, 4, 0, 1, RequestPolicy(0.1, 0))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_exception_reply_is_not_retried(transport: str, tmp_path: Path) -> None:
    """Exception 02 (illegal address) is a configuration error: reported at once, named, not retried."""
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: FirePanelSim()}, tmp_path, stack)
        with pytest.raises(DeviceException) as err:
            await bus.read(1, 4, 500, 2, RequestPolicy(0.5, 2))
        assert str(err.value) == "bus line unit 1: FC04 register 500: exception 02 (illegal data address)"
        assert err.value.code == 2
        assert bus.stats[1].requests == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_busy_exception_is_retried(transport: str, tmp_path: Path) -> None:
    """Exception 06 (busy) is retried within the device's retry budget."""
    panel = FirePanelSim()
    panel.faults.exception_next = 6
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        values = await bus.read(1, 4, 0, 2, RequestPolicy(0.5, 1))
        assert values[0] == 0x0100
        assert bus.stats[1].exceptions == {6: 1}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_dropped_reply_is_retried(transport: str, tmp_path: Path) -> None:
    """One lost reply costs one timeout, then the retry succeeds."""
    det = SmokeDetectorSim()
    det.faults.drop_next_replies = 1
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {3: det}, tmp_path, stack)
        values = await bus.read(3, 4, 0, 11, RequestPolicy(0.2, 1))
        assert values[6] == 320  # alarm threshold 3.20 %/m
        assert bus.stats[3].timeouts == 1


async def test_bus_corrupt_crc_is_discarded_and_retried(tmp_path: Path) -> None:
    """A reply with a bad CRC is not accepted; the retry gets a good one."""
    det = SmokeDetectorSim()
    det.faults.corrupt_next_crc = 1
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus("rtu-pty", {5: det}, tmp_path, stack)
        values = await bus.read(5, 4, 0, 11, RequestPolicy(0.2, 1))
        assert values[2] == 225
        assert bus.stats[5].timeouts == 1
        assert bus.stats[5].requests == 2


@pytest.mark.parametrize("fault", ["wrong_unit_next", "truncate_next"])
async def test_bus_a_reply_from_the_wrong_unit_or_cut_short_is_discarded_and_retried(
    tmp_path: Path, fault: str
) -> None:
    """R21: a well-formed reply carrying another unit id (a second device on the address, a misconfigured one) is
    not taken for this unit's; nor is a frame cut short. Counted as malformed; the retry gets the right one."""
    det = SmokeDetectorSim()
    setattr(det.faults, fault, 1)
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus("rtu-pty", {5: det}, tmp_path, stack)
        values = await bus.read(5, 4, 0, 11, RequestPolicy(0.2, 1))
        assert values[2] == 225
        assert (bus.stats[5].timeouts, bus.stats[5].malformed) == (0, 1)
        assert bus.stats[5].requests == 2


async def test_bus_frozen_registers_answer_stale_values(tmp_path: Path) -> None:
    """A device whose I/O board died answers on time with the values it had: nothing on the wire tells, which is
    why the bollard supervisor watches motion against time (see test_bollard_faults)."""
    sim = BollardSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus("tcp", {2: sim}, tmp_path, stack)
        sim.faults.frozen = True
        before = await bus.read(2, 4, 0, 15, RequestPolicy(0.5, 0))
        sim.set_state(BollardState.UP)
        assert await bus.read(2, 4, 0, 15, RequestPolicy(0.5, 0)) == before
        sim.faults.frozen = False
        assert (await bus.read(2, 4, 1, 1, RequestPolicy(0.5, 0)))[0] == BollardState.UP


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_reads_bollard_inputs_and_registers(transport: str, tmp_path: Path) -> None:
    """Discrete inputs (FC02) and input registers (FC04) of the bollard controller decode together."""
    sim = BollardSim()
    sim.set_input("loop_a_occupied", True)
    sim.set_state(BollardState.RISING, position=40)
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: sim}, tmp_path, stack)
        values = await ModbusDevice("b", bus, 1, load_profile("bollard_controller"), FAST).read()
        assert values["state"].value == "rising"
        assert values["position"].value == 40
        assert values["loop_a_occupied"].value is True
        assert values["limit_down"].value is False
        assert values["inhibit_flags"].value == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bus_writes_a_command_coil(transport: str, tmp_path: Path) -> None:
    """A coil write (FC05) reaches the controller once; a refused command comes back as its Modbus exception."""
    sim = BollardSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: sim, 2: FirePanelSim()}, tmp_path, stack)
        await bus.write_coil(1, 2, True, 1.0)  # cmd_stop: accepted, nothing moving
        await bus.write_coil(1, 0, True, 1.0)  # cmd_raise
        assert sim.state is BollardState.RISING
        with pytest.raises(DeviceException) as err:
            await bus.write_coil(2, 0, True, 1.0)  # a fire panel has no coils
        assert err.value.code == 1
        assert bus.stats[1].requests == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_device_refuses_wrong_map_version(transport: str, tmp_path: Path) -> None:
    """A device whose map version differs from the profile's is refused, naming the register."""
    panel = FirePanelSim()
    panel.map_version = 0x0200
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus(transport, {1: panel}, tmp_path, stack)
        with pytest.raises(ProfileMismatch) as err:
            await ModbusDevice("x", bus, 1, load_profile("fire_panel"), FAST).read()
        assert str(err.value) == "bus line unit 1: FC04 register 0: map version 512 is not 0x0100 of profile fire_panel"


async def test_device_offline_detector_battery_marker(tmp_path: Path) -> None:
    """0xFFFF in the battery register of a mains detector is 'no battery', not 65535 %."""
    det = SmokeDetectorSim()
    async with contextlib.AsyncExitStack() as stack:
        bus, _ = await open_sim_bus("tcp", {1: det}, tmp_path, stack)
        values = await ModbusDevice("s", bus, 1, load_profile("smoke_detector"), FAST).read()
        assert values["battery"].value is None
        assert values["battery"].quality is Quality.GOOD


def test_rtu_frame_gap_follows_baud() -> None:
    """t3.5 is 3.5 characters up to 19200 baud and 1.75 ms above."""
    assert rtu_frame_gap_s(9600, 11) == pytest.approx(0.00401, abs=1e-5)
    assert rtu_frame_gap_s(9600, 10) == pytest.approx(0.003646, abs=1e-5)
    assert rtu_frame_gap_s(115200) == 0.00175
