"""Modbus buses: RTU over a serial device and TCP, one transaction at a time.

A bus owns one pymodbus client and one lock. RS-485 is half duplex, so every transaction on a bus holds the lock
and, on RTU, the line stays silent for t3.5 after the reply before the next request goes out. Retries are ours,
not pymodbus's, so that a per-device timeout and retry count can be applied on a shared bus.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerBase, FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU

from drivers.aio import reraise_if_cancelling
from drivers.errors import BusError, DeviceError, DeviceException, DeviceTimeout, MalformedReply

log = logging.getLogger(__name__)

Function = Literal[1, 2, 3, 4]
"""Read function codes: 1 coils, 2 discrete inputs, 3 holding registers, 4 input registers."""

# A request that pymodbus never answers must still end: the library's own timeout is set well above any
# per-device timeout, and ours (asyncio.timeout around each attempt) is the one that fires.
_LIBRARY_TIMEOUT_S = 60.0


def rtu_frame_gap_s(baud: int, bits_per_char: int = 10) -> float:
    """Return t3.5, the silence that separates RTU frames; fixed at 1.75 ms above 19200 baud (Modbus serial guide)."""
    if baud > 19200:
        return 0.00175
    return 3.5 * bits_per_char / baud


def rtu_bits_per_char(parity: str, stopbits: int) -> int:
    """Start bit, 8 data bits, the parity bit if any, the stop bits."""
    return 1 + 8 + (0 if parity == "N" else 1) + stopbits


def rtu_read_s(function: int, count: int, baud: int, bits_per_char: int = 10) -> float:
    """Wire time of one read transaction: an 8-byte request, a reply of 5 bytes plus the data, and the t3.5 silence
    after each; the device's own time to answer is not included (devices.md section 5 and its table)."""
    data = 2 * count if function in (3, 4) else (count + 7) // 8
    return (8 + 5 + data) * bits_per_char / baud + 2 * rtu_frame_gap_s(baud, bits_per_char)


# FC43/14 basic and regular objects (Modbus application protocol, Read Device Identification).
DEVICE_ID_OBJECTS = {
    0: "vendor_name",
    1: "product_code",
    2: "revision",
    3: "vendor_url",
    4: "product_name",
    5: "model_name",
    6: "application_name",
}
_IDENTIFICATION_FUNCTION = 43
_MAX_ID_READS = 4  # a reply that says "more follows" is read on, this many times at most
LATENCY_WINDOW = 256  # the last answered transactions of a device that its latency quantiles are taken over


@dataclass(slots=True)
class TransactionStats:
    """Counters per device since the bus was built, for health telemetry.

    `requests` counts attempts (a retry is a request); `timeouts` attempts without a valid reply, `crc_errors` the
    replies among them that arrived with a wrong CRC (RTU only: noise, a bad termination, a line too long);
    `malformed` attempts answered with a reply that cannot be this one's: from another unit (a second device on
    the address, a misconfigured one), cut short, or with fewer values than asked for; `exceptions` Modbus
    exception replies by code. `latencies_s` holds the time from request to reply of the last answered
    transactions (exception replies included), the bus's inter-frame wait excluded.
    """

    requests: int = 0
    timeouts: int = 0
    malformed: int = 0
    crc_errors: int = 0
    exceptions: dict[int, int] = field(default_factory=dict)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def latency_quantile(self, q: float) -> float | None:
        """The `q` quantile (0 < q < 1) of the recent latencies in seconds; None before the first reply."""
        if not self.latencies_s:
            return None
        if len(self.latencies_s) == 1:
            return self.latencies_s[0]
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return cuts[round(q * 100) - 1]


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    """How long to wait for one device and how often to try again before giving up."""

    timeout_s: float
    retries: int


class RegisterReader(Protocol):
    """What device models need from a bus."""

    name: str

    async def read(
        self, unit: int, function: Function, address: int, count: int, policy: RequestPolicy
    ) -> list[int]: ...


class ModbusBus:
    """One physical Modbus line (RTU) or one TCP endpoint, used one transaction at a time."""

    def __init__(
        self,
        name: str,
        client: AsyncModbusSerialClient | AsyncModbusTcpClient,
        frame_gap_s: float,
        watch: _ReplyWatch | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._frame_gap_s = frame_gap_s
        self._lock = asyncio.Lock()
        self._last_end = 0.0
        self.stats: dict[int, TransactionStats] = {}
        self.current_unit: int | None = None  # the unit of the transaction on the line, if one is
        self._watch = watch
        if watch is not None:
            watch.bus = self

    @classmethod
    def rtu(cls, name: str, port: str, baud: int, parity: Literal["N", "E", "O"] = "N", stopbits: int = 1) -> ModbusBus:
        """Build a bus on a serial device (a USB RS-485 adapter, a UART, or a pseudo-terminal)."""
        watch = _ReplyWatch(FramerRTU(DecodePDU(is_server=False)))
        client = AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baud,
            bytesize=8,
            parity=parity,
            stopbits=stopbits,
            timeout=_LIBRARY_TIMEOUT_S,
            retries=0,
            name=name,
            trace_packet=watch.trace,
        )
        bits = 1 + 8 + (0 if parity == "N" else 1) + stopbits
        return cls(name, client, rtu_frame_gap_s(baud, bits), watch)

    @classmethod
    def tcp(cls, name: str, host: str, port: int) -> ModbusBus:
        """Build a bus to one Modbus TCP server (a device, or a TCP-to-RTU gateway)."""
        watch = _ReplyWatch(FramerSocket(DecodePDU(is_server=False)))
        client = AsyncModbusTcpClient(
            host, port=port, timeout=_LIBRARY_TIMEOUT_S, retries=0, name=name, trace_packet=watch.trace
        )
        return cls(name, client, 0.0, watch)

    async def __aenter__(self) -> ModbusBus:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._client.close()

    async def _connect(self) -> None:
        if self._client.connected:
            return
        try:
            async with asyncio.timeout(5.0):
                ok = await self._client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            raise BusError(self.name, "cannot open the connection")

    async def read(self, unit: int, function: Function, address: int, count: int, policy: RequestPolicy) -> list[int]:
        """Read `count` registers or bits; bits come back as 0/1.

        Raises:
            DeviceTimeout: no valid reply after 1 + `policy.retries` attempts.
            DeviceException: the device answered with a Modbus exception (not retried, except 6 busy).
            MalformedReply: the last attempt's reply came from another unit, was cut short or had the wrong length.
            BusError: the serial port or TCP connection cannot be opened.
        """
        reply = await self._with_retries(
            unit, function, address, policy, lambda: self._call(unit, function, address, count)
        )
        values = [int(bool(b)) for b in reply.bits] if function in (1, 2) else list(reply.registers)
        if len(values) < count:
            self.stats[unit].malformed += 1
            raise MalformedReply(self.name, unit, function, address, f"asked for {count} values, got {len(values)}")
        return values[:count]

    async def _with_retries(
        self, unit: int, function: int, address: int, policy: RequestPolicy, call: Callable[[], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        """One request, tried again after no reply, a malformed one or exception 06 (busy), counted in the device's
        stats; any other exception is the answer (`address` names the register, or the object for FC43)."""
        stats = self.stats.setdefault(unit, TransactionStats())
        last: DeviceError | None = None
        for _attempt in range(policy.retries + 1):
            stats.requests += 1
            try:
                reply = await self._exchange(unit, policy.timeout_s, call)
            except _Malformed as exc:
                stats.malformed += 1
                last = MalformedReply(self.name, unit, function, address, exc.reason)
                continue
            except TimeoutError:
                stats.timeouts += 1
                last = DeviceTimeout(self.name, unit, function, address, f"no reply within {policy.timeout_s:g} s")
                continue
            if reply.isError():
                code = int(getattr(reply, "exception_code", 0))
                stats.exceptions[code] = stats.exceptions.get(code, 0) + 1
                last = DeviceException(self.name, unit, function, address, code)
                if code == 6:
                    continue
                raise last
            return reply
        assert last is not None
        raise last

    async def read_identification(self, unit: int, policy: RequestPolicy) -> dict[int, str]:
        """Read the device's basic identification (FC43, MEI type 14, read code 1): object id -> text, e.g.
        {0: vendor name, 1: product code, 2: revision}. Many simple RS-485 devices do not have it and answer
        exception 01 (illegal function); some stay silent.

        Raises:
            DeviceTimeout: no valid reply after 1 + `policy.retries` attempts.
            DeviceException: the device answered with a Modbus exception.
            BusError: the serial port or TCP connection cannot be opened.
        """
        objects: dict[int, str] = {}
        next_id = 0
        for _read in range(_MAX_ID_READS):
            reply = await self._identification_reply(unit, next_id, policy)
            for object_id, value in dict(getattr(reply, "information", {})).items():
                parts = value if isinstance(value, list) else [value]
                objects[int(object_id)] = " ".join(bytes(p).decode("utf-8", errors="replace") for p in parts)
            more = int(getattr(reply, "more_follows", 0))
            following = int(getattr(reply, "next_object_id", 0))
            if not more or following <= next_id:
                break
            next_id = following
        return objects

    async def _identification_reply(self, unit: int, object_id: int, policy: RequestPolicy) -> ModbusPDU:
        return await self._with_retries(
            unit,
            _IDENTIFICATION_FUNCTION,
            object_id,
            policy,
            lambda: self._client.read_device_information(read_code=1, object_id=object_id, device_id=unit),
        )

    async def write_coil(self, unit: int, address: int, value: bool, timeout_s: float) -> None:
        """Write one coil (FC05), once: a command is not retried, so it is never carried out late.

        Raises:
            DeviceTimeout: no valid reply within `timeout_s`.
            MalformedReply: the reply came from another unit or was cut short (the write may have been carried out).
            DeviceException: the device refused it with a Modbus exception.
            BusError: the serial port or TCP connection cannot be opened.
        """
        stats = self.stats.setdefault(unit, TransactionStats())
        stats.requests += 1
        try:
            reply = await self._exchange(
                unit, timeout_s, lambda: self._client.write_coil(address, value, device_id=unit)
            )
        except _Malformed as exc:
            stats.malformed += 1
            raise MalformedReply(self.name, unit, 5, address, exc.reason) from None
        except TimeoutError:
            stats.timeouts += 1
            raise DeviceTimeout(self.name, unit, 5, address, f"no reply within {timeout_s:g} s") from None
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            stats.exceptions[code] = stats.exceptions.get(code, 0) + 1
            raise DeviceException(self.name, unit, 5, address, code)

    async def _exchange(self, unit: int, timeout_s: float, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """One request and its reply, alone on the bus, after the inter-frame gap.

        Raises:
            TimeoutError: no valid reply within `timeout_s`.
            _Malformed: none, but a reply from another unit or one cut short came (pymodbus skips the first and
                waits on for the rest of the second, so both end as timeouts to it).
        """
        async with self._lock:
            await self._connect()
            gap = self._last_end + self._frame_gap_s - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            began = time.monotonic()
            self.current_unit = unit
            if self._watch is not None:
                self._watch.begin()
            try:
                async with asyncio.timeout(timeout_s):
                    reply = await call()
            except (ModbusException, TimeoutError) as exc:
                # pymodbus raises ModbusIOException for a reply from the wrong unit or transaction: that is
                # noise or a duplicate address on the line, treated as no valid reply.
                log.debug("bus %s unit %s: %s", self.name, unit, exc)
                reason = self._watch.malformed() if self._watch is not None else None
                if reason is not None:
                    raise _Malformed(reason) from exc
                raise TimeoutError(str(exc)) from exc
            finally:
                self.current_unit = None
                self._last_end = time.monotonic()
            reraise_if_cancelling()
            self.stats.setdefault(unit, TransactionStats()).latencies_s.append(self._last_end - began)
            return reply

    async def _call(self, unit: int, function: Function, address: int, count: int) -> ModbusPDU:
        c = self._client
        if function == 1:
            return await c.read_coils(address, count=count, device_id=unit)
        if function == 2:
            return await c.read_discrete_inputs(address, count=count, device_id=unit)
        if function == 3:
            return await c.read_holding_registers(address, count=count, device_id=unit)
        return await c.read_input_registers(address, count=count, device_id=unit)


class _Malformed(Exception):
    """Inside the bus: an attempt that got a reply the framing threw away, and why (see `_ReplyWatch`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ReplyWatch:
    """Sees what pymodbus receives during a transaction, and what it drops without a word.

    pymodbus hands every received byte buffer (all of it since the request) to its `trace_packet` hook before its
    framer looks at it; this runs the same framing on it. Three things end as a plain timeout to pymodbus and are
    told apart here: an RTU frame with a wrong CRC (counted now, against the unit of the transaction on the line:
    the frame's own address byte may be the garbled one), a whole frame from another unit (skipped by pymodbus),
    and bytes that never became a whole frame before the timeout (a reply cut short).
    """

    def __init__(self, framer: FramerBase) -> None:
        self.bus: ModbusBus | None = None
        self._framer = framer
        self._other_unit: int | None = None
        self._partial = 0  # bytes received that are not a whole frame yet

    def begin(self) -> None:
        """A new attempt: forget what the last one received."""
        self._other_unit = None
        self._partial = 0

    def malformed(self) -> str | None:
        """Why the attempt that just timed out is malformed rather than unanswered; None: nothing came."""
        if self._other_unit is not None:
            return f"a reply from unit {self._other_unit}"
        if self._partial:
            return "a reply cut short"
        return None

    def trace(self, sending: bool, data: bytes) -> bytes:
        bus = self.bus
        if sending or bus is None or bus.current_unit is None:
            return data
        used, unit, _tid, pdu = self._framer.decode(data)
        if not used:
            self._partial = len(data)
        elif not pdu:
            self._partial = 0
            if isinstance(self._framer, FramerRTU):
                bus.stats.setdefault(bus.current_unit, TransactionStats()).crc_errors += 1
        else:
            self._partial = 0
            if unit != bus.current_unit:
                self._other_unit = unit
        return data
