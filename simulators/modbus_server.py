"""Modbus servers for simulated devices, over TCP and over a serial line (a pseudo-terminal in tests).

pymodbus does the framing. Its datastore is replaced by `_SimContext`, which answers from our device models so
that faults can be injected per request: a silent or absent unit gets no reply at all (as on a real RS-485 bus,
where pymodbus would otherwise answer for it), replies can be dropped, delayed, sent with a broken CRC (RTU), from
the wrong unit or cut short.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from typing import Any, cast

from pymodbus import FramerType
from pymodbus.constants import DeviceInformation, ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
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

    async def _wire_time(self, request_chars: int, reply_chars: int) -> None:
        if self.wire_baud:
            # A pty delivers at once; a line at 9600 baud does not. Request and reply take their wire time, so
            # the master sees real transaction times (devices.md 5). The device also keeps the t3.5 silence before
            # it answers.
            gap = 3.5 if self.wire_baud <= 19200 else 0.00175 * self.wire_baud / self.bits_per_char
            await asyncio.sleep((request_chars + reply_chars + gap) * self.bits_per_char / self.wire_baud)

    async def async_getValues(  # noqa: N802 (pymodbus names)
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        dev = await self._device(device_id)
        await self._wire_time(8, 5 + (2 * count if func_code in (3, 4) else (count + 7) // 8))
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

    async def identification(self, device_id: int, read_code: int, object_id: int) -> dict[int, bytes] | ExcCodes:
        """FC43/14 objects of one unit (basic: 0-2; regular: 0-6), or the exception it answers with."""
        dev = await self._device(device_id)
        identity = dev.identity
        objects = {} if identity is None else {k: v.encode() for k, v in sorted(identity.items())}
        await self._wire_time(7, 10 + sum(2 + len(v) for v in objects.values()))
        if dev.faults.exception_next is not None:
            code, dev.faults.exception_next = dev.faults.exception_next, None
            return ExcCodes(code)
        if identity is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if read_code == DeviceInformation.SPECIFIC:
            return {object_id: objects[object_id]} if object_id in objects else ExcCodes.ILLEGAL_ADDRESS
        last = 0x02 if read_code == DeviceInformation.BASIC else 0x06
        if read_code not in (DeviceInformation.BASIC, DeviceInformation.REGULAR):
            return ExcCodes.ILLEGAL_VALUE
        # An object id the device does not have starts the stream from the beginning (the specification's rule).
        start = object_id if object_id in objects and object_id <= last else 0
        return {k: v for k, v in objects.items() if start <= k <= last}


class _IdentifyRequest(ModbusPDU):
    """FC43/14 Read Device Identification, answered per unit from the simulated devices.

    pymodbus's own server answers it from one process-wide identity, for every unit id, even absent or silent
    ones; a bus of mixed devices needs each unit's own answer, or none. Registered as the server's whole FC43
    (sub function -1), so pymodbus does not swap in its own request class.
    """

    function_code = 0x2B
    rtu_frame_size = 7  # unit, function, MEI type, read code, object id, CRC (2)

    def __init__(self, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id)
        self.mei_type = 0x0E
        self.read_code = DeviceInformation.BASIC
        self.object_id = 0

    def encode(self) -> bytes:
        return struct.pack(">BBB", self.mei_type, self.read_code, self.object_id)

    def decode(self, data: bytes) -> None:
        self.mei_type, self.read_code, self.object_id = struct.unpack(">BBB", data[:3])

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        if self.mei_type != 0x0E or not isinstance(context, _SimContext):
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_FUNCTION)
        objects = await context.identification(device_id, self.read_code, self.object_id)
        if isinstance(objects, ExcCodes):
            return ExceptionResponse(self.function_code, objects)
        return ReadDeviceInformationResponse(
            read_code=self.read_code, information=dict(objects), dev_id=device_id, transaction_id=self.transaction_id
        )


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
    def tcp(
        cls, devices: dict[int, SimDevice], host: str = "127.0.0.1", port: int = 0, rtu_gateway: bool = False
    ) -> SimServer:
        """A Modbus TCP server on loopback; port 0 picks a free one (see `address` once started).

        `rtu_gateway`: it answers as a TCP-to-RTU gateway does for a unit that is absent or silent behind it,
        with exception 0B (gateway target device failed to respond) instead of no reply.
        """
        placeholder = LibSimDevice(0, simdata=SimData(0))
        self_ref: list[SimServer] = []

        def trace(sending: bool, data: bytes) -> bytes:
            # An MBAP header (transaction 2, protocol 2, length 2, unit 1) comes before the PDU.
            if not sending or len(data) < 8 or not self_ref:
                return data
            dev = self_ref[0].devices.get(data[6])
            if dev is None:
                return data
            if dev.faults.wrong_unit_next > 0:
                dev.faults.wrong_unit_next -= 1
                return data[:6] + bytes([(data[6] % 247) + 1]) + data[7:]
            if dev.faults.truncate_next > 0:
                dev.faults.truncate_next -= 1
                return data[: len(data) - 3]
            return data

        server = ModbusTcpServer(
            placeholder,
            address=(host, port),
            ignore_missing_devices=not rtu_gateway,
            custom_pdu=[_IdentifyRequest],
            trace_packet=trace,
        )
        sim = cls(devices, server)
        self_ref.append(sim)
        return sim

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
            custom_pdu=[_IdentifyRequest],
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
