"""Modbus RTU, slave side: CRC-16, frames cut by t3.5 of silence, read requests answered from a register map.

What the slave does with a frame (Modbus over serial line guide, application protocol):
- shorter than 4 bytes, or a wrong CRC: dropped without a reply (noise, a collision); a wrong CRC is counted;
- addressed to another unit, or to 0 (broadcast): no reply. A broadcast is never answered, and this node has
  nothing a broadcast could write;
- a read function the map has a table for (FC02, FC03, FC04 here): the values, or exception 02 when the range
  leaves the map, 03 when the quantity is 0 or above the limit (2000 bits, 125 registers) or the request is the
  wrong length;
- any other function (writes included: the node is configured through its file only): exception 01.
"""

from fieldnode.ticks import ticks_diff

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3

MAX_FRAME = 256  # the longest RTU frame
MAX_BITS = 2000  # FC01/02 quantity limit
MAX_REGISTERS = 125  # FC03/04 quantity limit


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """`body` followed by its CRC, low byte first."""
    crc = crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


class FrameAssembler:
    """Collects received bytes into frames; a frame ends when the line has been silent for `gap_us` (t3.5).

    The silence is measured from the last time bytes were seen, which is never earlier than when they arrived,
    so a frame is never cut early; bytes after a silence start a new frame. A frame longer than 256 bytes is
    noise: it is thrown away whole.
    """

    def __init__(self, gap_us: int) -> None:
        self.gap_us = gap_us
        self._buffer = bytearray()
        self._last_us = 0
        self._overrun = False

    def feed(self, data: bytes, now_us: int) -> bytes | None:
        """Bytes just read at `now_us`; returns the previous frame if a silence ended it before these came."""
        done = self.poll(now_us) if self._buffer or self._overrun else None
        if len(self._buffer) + len(data) > MAX_FRAME:
            self._buffer = bytearray()
            self._overrun = True
        elif not self._overrun:
            self._buffer.extend(data)
        self._last_us = now_us
        return done

    def poll(self, now_us: int) -> bytes | None:
        """The frame, once `gap_us` of silence has followed it; None while it may still be arriving."""
        if not (self._buffer or self._overrun) or ticks_diff(now_us, self._last_us) < self.gap_us:
            return None
        frame = bytes(self._buffer)
        self._buffer = bytearray()
        overrun, self._overrun = self._overrun, False
        return None if overrun else frame


class Counters:
    """What the slave has seen on the line, for the map's diagnostic registers (16-bit, wrapping)."""

    def __init__(self) -> None:
        self.requests = 0  # valid frames addressed to this unit
        self.crc_errors = 0  # frames dropped for a wrong CRC
        self.exceptions = 0  # exception replies sent


class RegisterSource:
    """What the slave reads from: the node's register map, and which read functions (1-4) it has tables for."""

    functions: tuple[int, ...] = (1, 2, 3, 4)

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """`count` values (0/1 for bits) of `function`'s table from `address`, or an exception code (an int)."""
        raise NotImplementedError


class Slave:
    """Answers read requests for one unit from a register map."""

    def __init__(self, unit: int, source: RegisterSource, counters: Counters | None = None) -> None:
        self.unit = unit
        self.source = source
        self.counters = counters if counters is not None else Counters()

    def handle(self, frame: bytes) -> bytes | None:
        """The reply to one received frame, with its CRC; None when no reply is due."""
        if len(frame) < 4:
            return None
        if crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
            self.counters.crc_errors = (self.counters.crc_errors + 1) & 0xFFFF
            return None
        unit = frame[0]
        if unit != self.unit:  # another unit's request or reply, or a broadcast
            return None
        self.counters.requests = (self.counters.requests + 1) & 0xFFFF
        function = frame[1]
        if function not in self.source.functions:
            return self._exception(function, ILLEGAL_FUNCTION)
        if len(frame) != 8:
            return self._exception(function, ILLEGAL_DATA_VALUE)
        address = frame[2] << 8 | frame[3]
        count = frame[4] << 8 | frame[5]
        limit = MAX_BITS if function in (1, 2) else MAX_REGISTERS
        if not 1 <= count <= limit:
            return self._exception(function, ILLEGAL_DATA_VALUE)
        values = self.source.read(function, address, count)
        if isinstance(values, int):
            return self._exception(function, values)
        data = bytearray()
        if function in (1, 2):
            data = _pack_bits(values)
        else:
            for word in values:
                data.append(word >> 8 & 0xFF)
                data.append(word & 0xFF)
        return with_crc(bytes((self.unit, function, len(data))) + bytes(data))

    def _exception(self, function: int, code: int) -> bytes:
        self.counters.exceptions = (self.counters.exceptions + 1) & 0xFFFF
        return with_crc(bytes((self.unit, function | 0x80, code)))


def _pack_bits(bits: list[int]) -> bytearray:
    """Bits packed eight to a byte, the first bit in the lowest bit of the first byte, padded with zeros."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i >> 3] |= 1 << (i & 7)
    return out
