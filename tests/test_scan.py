"""`campus-edge scan`: finding and naming the devices of a line over a pseudo-terminal (with and without wire
timing) and behind a Modbus TCP endpoint; the proposed configuration loads with the gateway's own loader."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from drivers.errors import DeviceException
from drivers.modbus import ModbusBus, RequestPolicy
from gateway.base.i18n import set_language
from gateway.cli.scan.probe import Answer, Kind, parse_ids, scan_bus
from gateway.cli.scan.proposal import propose
from gateway.config import RtuBusConfig, TcpBusConfig, parse_config
from simulators.bollard import BollardSim
from simulators.devices import FirePanelSim, ModbusExceptionCode, SimDevice, SmokeDetectorSim
from simulators.modbus_server import SimServer
from simulators.pty import PtyPair

BASE = '[site]\nid = "test-school"\n[gateway]\nid = "gw-1"\n[mqtt]\nurls = ["mqtts://127.0.0.1:8883"]\n'


class EnergyMeter(SimDevice):
    """A device no profile describes: holding registers 0-9 only (FC03), exception 01 to anything else."""

    model = "energy_meter"

    def table(self, function: int) -> dict[int, int]:
        return {a: 0x00E6 + a for a in range(10)} if function == 3 else {}


class BrokenDevice(SimDevice):
    """A device that answers every request with exception 04 (server device failure)."""

    model = "broken"

    def read(self, function: int, address: int, count: int) -> list[int] | ModbusExceptionCode:
        return ModbusExceptionCode.DEVICE_FAILURE


def site() -> dict[int, SimDevice]:
    """A panel, two detectors (one silent), a bollard controller, an unknown meter and a broken device."""
    silent = SmokeDetectorSim()
    silent.faults.silent = True
    return {1: FirePanelSim(), 3: SmokeDetectorSim(), 4: silent, 5: BollardSim(), 7: EnergyMeter(), 9: BrokenDevice()}


@pytest.fixture(autouse=True)
def english() -> None:
    set_language("en")


async def open_line(
    transport: str, devices: dict[int, SimDevice], tmp_path: Path, stack: contextlib.AsyncExitStack
) -> tuple[ModbusBus, RtuBusConfig | TcpBusConfig]:
    """Simulators for `devices` and the scanner's bus to them: a pty at 9600 baud (`rtu-timed`: with the line's
    wire time), or Modbus TCP."""
    if transport == "tcp":
        server = await stack.enter_async_context(SimServer.tcp(devices))
        host, port = server.address
        bus = await stack.enter_async_context(ModbusBus.tcp("tcp-1", host, port))
        return bus, TcpBusConfig(id="tcp-1", type="tcp", host=host, port=port)
    pair = await stack.enter_async_context(PtyPair(tmp_path / "gw-end", tmp_path / "dev-end"))
    timed = transport == "rtu-timed"
    await stack.enter_async_context(SimServer.rtu(devices, str(pair.device_end), 9600, line_timing=timed))
    bus = await stack.enter_async_context(ModbusBus.rtu("rs485-1", str(pair.gateway_end), 9600))
    return bus, RtuBusConfig(id="rs485-1", type="rtu", port=str(pair.gateway_end))


@pytest.mark.parametrize("transport", ["rtu", "rtu-timed", "tcp"])
async def test_scan_finds_mixed_devices(transport: str, tmp_path: Path) -> None:
    """Units 1-10 of a mixed line: the panel, detector and controller are named by their profiles (the panel and
    the controller also by FC43/14), the silent detector and the empty ids are not listed, the meter is unknown
    with what it answered, the broken device answers with exceptions only."""
    async with contextlib.AsyncExitStack() as stack:
        bus, _cfg = await open_line(transport, site(), tmp_path, stack)
        seen: list[int] = []
        found = await scan_bus(bus, range(1, 11), 0.15, on_unit=lambda unit, _f: seen.append(unit))
    assert seen == list(range(1, 11))
    by_unit = {f.unit: f for f in found}
    assert sorted(by_unit) == [1, 3, 5, 7, 9]
    assert [p.model for p in by_unit[1].profiles] == ["fire_panel"]
    assert by_unit[1].identification == {0: "campus-edge simulators", 1: "SIM-FACP", 2: "1.0"}
    assert [p.model for p in by_unit[3].profiles] == ["smoke_detector"]
    assert by_unit[3].identification == {}
    assert by_unit[3].identification_exception == 1
    assert [p.model for p in by_unit[5].profiles] == ["bollard_controller"]
    assert by_unit[5].identification[1] == "SIM-BOLLARD"
    meter = by_unit[7]
    assert meter.kind is Kind.UNKNOWN
    assert meter.answers[0] == Answer(3, 0, 1, values=(0x00E6,))
    assert "FC03 0: 0x00e6" in [a.describe() for a in meter.answers]
    assert "FC04 0: exception 01 (illegal function)" in [a.describe() for a in meter.answers]
    broken = by_unit[9]
    assert broken.kind is Kind.EXCEPTIONS
    assert broken.answers[0].describe() == "FC03 0: exception 04 (server device failure)"


async def test_scan_over_an_rtu_gateway_takes_exception_0b_for_silence(tmp_path: Path) -> None:
    """Behind a TCP-to-RTU gateway an absent or silent unit is answered by the gateway with exception 0B: that unit
    is not there, not a device answering with exceptions."""
    devices = site()
    async with SimServer.tcp(devices, rtu_gateway=True) as server, ModbusBus.tcp("gw", *server.address) as bus:
        with pytest.raises(DeviceException) as raised:
            await bus.read(4, 3, 0, 1, RequestPolicy(0.5, 0))
        assert raised.value.code == 0x0B
        found = await scan_bus(bus, range(1, 7), 0.5)
    assert [(f.unit, f.kind) for f in found] == [(1, Kind.MATCHED), (3, Kind.MATCHED), (5, Kind.MATCHED)]


async def test_scan_tells_why_a_panel_of_another_map_version_is_not_proposed(tmp_path: Path) -> None:
    """A panel whose map version the profile was not written for is not proposed; the report shows the version
    it answered."""
    panel = FirePanelSim()
    panel.map_version = 0x0200
    async with contextlib.AsyncExitStack() as stack:
        bus, cfg = await open_line("tcp", {2: panel}, tmp_path, stack)
        found = await scan_bus(bus, [2], 0.5)
    assert found[0].kind is Kind.UNKNOWN
    assert "FC04 0: 0x0200" in [a.describe() for a in found[0].answers]
    assert propose(cfg, found).devices == ()


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
async def test_scan_proposal_loads_with_the_gateway_config_loader(transport: str, tmp_path: Path) -> None:
    """The proposed [[buses]] and [[devices]] entries, pasted under a site's [site], [gateway] and [mqtt], load as
    the gateway loads its configuration; the unknown and broken units are comments only."""
    async with contextlib.AsyncExitStack() as stack:
        bus, bus_cfg = await open_line(transport, site(), tmp_path, stack)
        found = await scan_bus(bus, range(1, 10), 0.15)
    proposal = propose(bus_cfg, found)
    text = proposal.toml()
    cfg = parse_config(BASE + "\n" + text, "proposal.toml", tmp_path)
    assert [(b.id, b.type) for b in cfg.buses] == [(bus_cfg.id, transport)]
    assert [(d.id, d.unit, d.profile, d.poll_interval_s) for d in cfg.devices] == [
        ("fire-panel-1", 1, "fire_panel", 0.5),
        ("smoke-detector-3", 3, "smoke_detector", 1.0),
        ("bollard-controller-5", 5, "bollard_controller", 0.25),
    ]
    assert "# unit 7 fits no profile; not proposed" in text
    assert "#   FC03 0: 0x00e6" in text
    assert "# unit 9 answers with exceptions only; not proposed" in text
    assert "# unit 1: fire_panel, campus-edge simulators SIM-FACP 1.0" in text
    assert "# unit 3: smoke_detector\n" in text
    assert "#   FC43/14: exception 01 (illegal function)" in text
    if transport == "rtu":
        assert proposal.load is not None
        assert 0 < proposal.load.load < 0.8
        assert "# estimated load of this polling:" in text
    else:
        assert proposal.load is None


def test_scan_parses_unit_id_lists() -> None:
    """Ranges and lists of unit ids; ids outside 1-247 and junk are refused with the text given."""
    assert parse_ids("1-5") == [1, 2, 3, 4, 5]
    assert parse_ids("3, 1,2-4") == [3, 1, 2, 4]
    with pytest.raises(ValueError, match=r"unit ids are 1 to 247, got '0-3'"):
        parse_ids("0-3")
    with pytest.raises(ValueError, match=r"expected unit ids like 1-247 or 1,3,10-20, got 'a-b'"):
        parse_ids("a-b")


async def cli(*args: str, env_lang: str = "C") -> tuple[int, str, str]:
    """`campus-edge ...` in a process of its own, as an installer runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "LANG": env_lang},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _devices_of(text: str) -> Sequence[tuple[int, str]]:
    return [(d["unit"], d["profile"]) for d in tomllib.loads(text).get("devices", [])]


async def test_scan_command_over_a_pty(tmp_path: Path) -> None:
    """The command on a pseudo-terminal at 9600 8N1: progress on stderr (plain lines, not a terminal), the report
    and the TOML on stdout, the TOML also in the --output file; in zh-CN on asking."""
    devices = site()
    async with contextlib.AsyncExitStack() as stack:
        pair = await stack.enter_async_context(PtyPair(tmp_path / "gw-end", tmp_path / "dev-end"))
        await stack.enter_async_context(SimServer.rtu(devices, str(pair.device_end), 9600))
        out_file = tmp_path / "proposal.toml"
        code, out, err = await cli(
            "scan", "--port", str(pair.gateway_end), "--baud", "9600", "--parity", "N", "--ids", "1-6",
            "--timeout-ms", "150", "--output", str(out_file), "--lang", "en",
        )  # fmt: skip
        assert code == 0, err
        assert "scanning rs485-1: 6/6 units, 3 found" in err
        assert "Bus rs485-1 (" in out
        assert "6 unit ids tried, 3 answered." in out
        assert _devices_of(out_file.read_text()) == [(1, "fire_panel"), (3, "smoke_detector"),
                                                     (5, "bollard_controller")]  # fmt: skip
        assert out.endswith(out_file.read_text())
        code, out, err = await cli("scan", "--port", str(pair.gateway_end), "--ids", "7", "--timeout-ms", "150",
                                   env_lang="zh_CN.UTF-8")  # fmt: skip
        assert code == 0, err
        assert "未知设备" in out
        assert "# 地址 7 不符合任何设备配置文件, 未列入" in out


async def test_scan_command_with_nothing_on_the_line_or_no_port(tmp_path: Path) -> None:
    """No unit answers: exit 1. A port that does not exist: exit 2, naming the bus and the port."""
    async with PtyPair(tmp_path / "gw-end", tmp_path / "dev-end") as pair:
        code, out, _err = await cli("scan", "--port", str(pair.gateway_end), "--ids", "1-2", "--timeout-ms", "50",
                                    "--lang", "en")  # fmt: skip
        assert code == 1
        assert "2 unit ids tried, 0 answered." in out
    code, _out, err = await cli("scan", "--port", str(tmp_path / "ttyUSB9"), "--lang", "en")
    assert code == 2
    assert f"cannot open bus rs485-1 ({tmp_path / 'ttyUSB9'}, 9600 8N1)" in err
