"""Modbus servers for simulated devices, over TCP and over a serial line (a pseudo-terminal in tests).

pymodbus does the framing. Its datastore is replaced by `_SimContext`, which answers from our device models so
that faults can be injected per request: a silent or absent unit gets no reply at all (as on a real RS-485 bus,
where pymodbus would otherwise answer for it), replies can be dropped, delayed or sent with a broken CRC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimData
from pymodbus.simulator import SimDevice as LibSimDevice

from simulators.devices import SimDevice

log = logging.getLogger(__name__)


_READ_BACK = {5: 1, 15: 1, 6: 3, 16: 3}


class _SimContext:
    """Duck-types the pymodbus server datastore: `async_getValues`, `async_setValues`, `device_ids`."""

    def __init__(self, devices: dict[int, SimDevice]) -> None:
        self.devices = devices
        self.wire_baud: int | None = None  # set: each reply waits for the frames' time on an RS-485 line
        self.bits_per_char = 10

    def device_ids(self) -> list[int]:
        return list(self.devices)

    async def _device(self, unit: int) -> SimDevice:
        dev = self.devices.get(unit)
        if dev is None or dev.faults.silent:
            raise NoSuchIdException(f"unit {unit} is silent")
        dev.requests += 1
        if dev.faults.drop_next_replies > 0:
            dev.faults.drop_next_replies -= 1
            raise NoSuchIdException(f"unit {unit} drops this reply")
        if dev.faults.stall_s > 0:
            await asyncio.sleep(dev.faults.stall_s)
        return dev

    async def async_getValues(  # noqa: N802 (pymodbus names)
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        dev = await self._device(device_id)
        if self.wire_baud:
            # A pty delivers at once; a line at 9600 baud does not. Request (8 bytes for a read) and reply
            # (5 bytes + data) take their wire time, so the master sees real transaction times (devices.md 5).
            # The device also keeps the t3.5 silence before it answers.
            data = 2 * count if func_code in (3, 4) else (count + 7) // 8
            chars = 8 + 5 + data + (3.5 if self.wire_baud <= 19200 else 0.00175 * self.wire_baud / self.bits_per_char)
            await asyncio.sleep(chars * self.bits_per_char / self.wire_baud)
        if dev.faults.exception_next is not None:
            code, dev.faults.exception_next = dev.faults.exception_next, None
            return ExcCodes(code)
        # pymodbus reads back what a write request wrote, asking with the write's function code.
        result = dev.read(_READ_BACK.get(func_code, func_code), address, count)
        if isinstance(result, list):
            if func_code in (1, 2):
                return [bool(v) for v in result]
            return result
        return ExcCodes(int(result))

    async def async_setValues(  # noqa: N802 (pymodbus names)
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        dev = await self._device(device_id)
        result = dev.write(func_code, address, [int(v) for v in values])
        return None if result is None else ExcCodes(int(result))


def crc16(frame: bytes) -> int:
    """The Modbus RTU CRC (polynomial 0xA001, initial 0xFFFF), sent low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class SimServer:
    """One Modbus server answering for several simulated units: a TCP endpoint or one serial bus."""

    def __init__(self, devices: dict[int, SimDevice], server: ModbusTcpServer | ModbusSerialServer) -> None:
        self.devices = devices
        self._server = server
        self._context = _SimContext(devices)
        # pymodbus has no public hook for a custom datastore; the handler reads `server.context` per request.
        cast(Any, server).context = self._context

    @classmethod
    def tcp(cls, devices: dict[int, SimDevice], host: str = "127.0.0.1", port: int = 0) -> SimServer:
        """A Modbus TCP server on loopback; port 0 picks a free one (see `address` once started)."""
        placeholder = LibSimDevice(0, simdata=SimData(0))
        server = ModbusTcpServer(placeholder, address=(host, port), ignore_missing_devices=True)
        return cls(devices, server)

    @classmethod
    def rtu(cls, devices: dict[int, SimDevice], port: str, baud: int = 9600, line_timing: bool = False) -> SimServer:
        """A Modbus RTU server on a serial device, e.g. one end of a pseudo-terminal pair.

        `line_timing`: each reply is delayed by the wire time of the request and the reply at `baud`.
        """
        placeholder = LibSimDevice(0, simdata=SimData(0))
        self_ref: list[SimServer] = []

        def trace(sending: bool, data: bytes) -> bytes:
            if not sending or not data or not self_ref:
                return data
            dev = self_ref[0].devices.get(data[0])
            if dev is None:
                return data
            if dev.faults.corrupt_next_crc > 0:
                dev.faults.corrupt_next_crc -= 1
                return data[:-1] + bytes([data[-1] ^ 0xFF])
            if dev.faults.wrong_unit_next > 0:
                dev.faults.wrong_unit_next -= 1
                frame = bytes([(data[0] % 247) + 1]) + data[1:-2]
                return frame + crc16(frame).to_bytes(2, "little")
            if dev.faults.truncate_next > 0:
                dev.faults.truncate_next -= 1
                return data[: max(1, len(data) - 3)]
            return data

        server = ModbusSerialServer(
            placeholder,
            framer=FramerType.RTU,
            port=port,
            baudrate=baud,
            ignore_missing_devices=True,
            trace_packet=trace,
        )
        sim = cls(devices, server)
        if line_timing:
            sim._context.wire_baud = baud
        self_ref.append(sim)
        return sim

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) a TCP server listens on."""
        transport = cast(Any, self._server).transport
        sockname = transport.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def __aenter__(self) -> SimServer:
        await self._server.serve_forever(background=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.shutdown()  # type: ignore[no-untyped-call]
