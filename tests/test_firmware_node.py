"""The field-node firmware polled by the gateway's own Modbus driver over a serial device.

The firmware's `main.py` runs unchanged in a CPython process of its own, with tests/fake_rp2/machine.py standing in
for MicroPython's `machine`: its UART is one end of a pseudo-terminal pair, its ADC levels come from a file the test
rewrites (a door opening is a level moving from 50 % to 67 % of full scale). The gateway's ModbusBus.rtu and
ModbusDevice with the door_node profile read it from the other end, as they would a node on an RS-485 line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.device import ModbusDevice
from drivers.errors import DeviceException, DeviceTimeout
from drivers.modbus import ModbusBus, RequestPolicy
from drivers.profile import PointValue, load_profile
from gateway.cli.scan.probe import Kind, identifiable_profiles, probe_unit
from simulators.pty import PtyPair

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FAKE_RP2 = Path(__file__).resolve().parent / "fake_rp2"
UNIT = 21
BAUD = 19200
POLICY = RequestPolicy(timeout_s=0.5, retries=1)
SHUT, OPENED, CUT, SHORTED = 32768, 43690, 65535, 0  # 4.7 k pull-up: 4.7 k, 9.4 k, open circuit, 0 Ohm
CONFIG: dict[str, object] = {"unit": UNIT, "baud": BAUD, "debounce_ms": 50, "watchdog_ms": 8000}


@dataclass
class Node:
    """A running firmware process, the ADC file it reads and the gateway's bus to it."""

    bus: ModbusBus
    adc_file: Path
    process: asyncio.subprocess.Process

    def wire(self, *levels: int) -> None:
        """Set the loop level of point 1, 2, ... (ADC0, ADC1, ...), atomically."""
        tmp = self.adc_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(ch): level for ch, level in enumerate(levels)}), encoding="utf-8")
        tmp.replace(self.adc_file)

    def device(self, unit: int = UNIT) -> ModbusDevice:
        return ModbusDevice("doors-east", self.bus, unit, load_profile("door_node"), POLICY)


@contextlib.asynccontextmanager
async def running_node(tmp_path: Path, config: dict[str, object] | str) -> AsyncIterator[Node]:
    """Start the firmware on a pty pair with three shut doors; ended by its PID when the test is done."""
    flash = tmp_path / "flash"  # the node's filesystem: main.py finds config.json in its working directory
    flash.mkdir()
    text = config if isinstance(config, str) else json.dumps(config)
    (flash / "config.json").write_text(text, encoding="utf-8")
    adc_file = tmp_path / "adc.json"
    async with contextlib.AsyncExitStack() as stack:
        pair = await stack.enter_async_context(PtyPair(tmp_path / "gw-end", tmp_path / "node-end"))
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(FAKE_RP2),
            FAKE_RP2_UART=str(pair.device_end),
            FAKE_RP2_DE_PIN="2",
            FAKE_RP2_ADC=str(adc_file),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FIRMWARE / "main.py"),
            cwd=flash,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            bus = await stack.enter_async_context(ModbusBus.rtu("field", str(pair.gateway_end), BAUD))
            node = Node(bus, adc_file, process)
            node.wire(SHUT, SHUT, SHUT)
            yield node
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await process.wait()


async def read_until(
    node: Node, done: Callable[[dict[str, PointValue]], bool], unit: int = UNIT
) -> dict[str, PointValue]:
    """Poll the node until `done` holds for what it answers (a node still starting answers nothing)."""
    device = node.device(unit)
    async with asyncio.timeout(15):
        while True:
            with contextlib.suppress(DeviceTimeout):
                values = await device.read()
                if done(values):
                    return values
            if node.process.returncode is not None:
                output = await node.process.stdout.read() if node.process.stdout else b""
                pytest.fail(f"the firmware exited ({node.process.returncode}): {output.decode(errors='replace')}")
            await asyncio.sleep(0.02)


def states(values: dict[str, PointValue]) -> list[object]:
    return [values[f"door{n}_state"].value for n in range(1, 5)]


@pytest.mark.slow
async def test_firmware_node_doors_polled_through_the_profile(tmp_path: Path) -> None:
    """Identification, then a door opening, a loop cut and a loop shorted, each seen with its events' bits."""
    async with running_node(tmp_path, CONFIG) as node:
        v = await read_until(node, lambda v: True)
        assert (v["model_code"].value, v["map_version"].value, v["fw_version"].value) == (0x4401, 0x0100, 0x0100)
        assert v["point_count"].value == 3
        assert states(v) == ["normal", "normal", "normal", "unused"]
        assert v["door1_level"].value == 50.0
        assert v["board_temperature"].value == 27.0
        assert v["config_fault"].value is False
        assert v["event_counter"].value == 0

        node.wire(OPENED, SHUT, SHUT)
        v = await read_until(node, lambda v: v["door1_state"].value == "open")
        assert v["door1_open"].value is True
        assert v["door1_tamper"].value is False
        assert v["tamper"].value is False
        assert v["door1_level"].value == 66.67
        assert (v["door1_changes"].value, v["event_counter"].value) == (1, 1)

        node.wire(OPENED, CUT, SHORTED)
        v = await read_until(node, lambda v: states(v)[1:3] == ["cut", "short"])
        assert [v[f"door{n}_tamper"].value for n in range(1, 5)] == [False, True, True, False]
        assert v["tamper"].value is True
        assert v["door2_open"].value is False
        assert v["event_counter"].value == 3

        node.wire(SHUT, CUT, SHORTED)
        v = await read_until(node, lambda v: v["door1_state"].value == "normal")
        assert v["door1_open"].value is False
        assert v["door1_changes"].value == 2
        assert v["event_counter"].value == 4


@pytest.mark.slow
async def test_firmware_node_exceptions_and_other_units(tmp_path: Path) -> None:
    """02 beyond the map, 01 for coils and writes, silence for another unit; the node answers on after each."""
    async with running_node(tmp_path, CONFIG) as node:
        await read_until(node, lambda v: True)
        with pytest.raises(DeviceException) as err:
            await node.bus.read(UNIT, 4, 20, 9, POLICY)
        assert str(err.value) == "bus field unit 21: FC04 register 20: exception 02 (illegal data address)"
        with pytest.raises(DeviceException) as err:
            await node.bus.read(UNIT, 1, 0, 1, POLICY)
        assert err.value.code == 1
        with pytest.raises(DeviceException) as err:
            await node.bus.write_coil(UNIT, 0, True, 0.5)
        assert err.value.code == 1
        with pytest.raises(DeviceTimeout):
            await node.bus.read(UNIT + 1, 4, 0, 1, RequestPolicy(0.2, 0))
        assert await node.bus.read(UNIT, 4, 16, 4, POLICY) == [1, 1, 1, 0]
        assert node.bus.stats[UNIT].exceptions == {2: 1, 1: 2}


@pytest.mark.slow
async def test_firmware_node_settings_and_scan(tmp_path: Path) -> None:
    """The settings registers mirror config.json, and a scan names the node by the door_node profile alone."""
    async with running_node(tmp_path, CONFIG) as node:
        await read_until(node, lambda v: True)
        s = await node.device().read_settings()
        assert {k: s[k].value for k in ("unit", "baud_100", "debounce_ms", "configured_points")} == {
            "unit": UNIT,
            "baud_100": 192,
            "debounce_ms": 50,
            "configured_points": 3,
        }
        assert (s["open_above"].value, s["hysteresis"].value) == (58.3, 1.5)
        found = await probe_unit(node.bus, UNIT, identifiable_profiles(), 0.5)
        assert found is not None
        assert found.kind is Kind.MATCHED
        assert [p.model for p in found.profiles] == ["door_node"]


@pytest.mark.slow
async def test_firmware_node_bad_config_runs_on_defaults_and_says_so(tmp_path: Path) -> None:
    """A config.json with unit 300 leaves the node on the defaults (unit 247) with its config_fault bit set."""
    async with running_node(tmp_path, '{"unit": 300, "baud": 19200}') as node:
        v = await read_until(node, lambda v: True, unit=247)
        assert v["config_fault"].value is True
        assert states(v) == ["normal", "normal", "normal", "unused"]
