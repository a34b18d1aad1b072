"""GB/T 26875.3-2011 frames: `@@`, the control unit, the application data unit (ADU), a checksum and `##`.

A frame on the wire, offsets from 0, integers little-endian:

    0  '@@'          2  serial (2)    4  main version   5  user version   6  time label (6)
    12 source (6)    18 destination (6)                 24 ADU length n (2, <= 1024)       26 command
    27 ADU (n)       27+n checksum: the low byte of the sum of bytes 2 .. 26+n              28+n '##'

`FrameReader` splits a TCP (or serial) byte stream into frames: it finds `@@`, reads the length, and checks the
end characters and the checksum. Everything it cannot take as a frame comes out as a `BadFrame` holding the bytes,
so the caller can deny it (command 6) and log it, and no byte is lost or read twice. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from enum import IntEnum

from drivers.errors import FieldRangeError, FrameError

START = b"@@"
END = b"##"
CONTROL_SIZE = 27  # start characters and control unit, up to and with the command byte
MAX_ADU = 1024
MIN_FRAME = 30
MAX_FRAME = MIN_FRAME + MAX_ADU
MAX_SERIAL = 0xFFFF
MAX_ADDRESS = (1 << 48) - 1
PART = "GB/T 26875.3 frame"

# The frame carries no time zone. Installed devices and the codecs we know send local time; in China that is
# UTC+8 all year (no daylight saving). A proposal, not the standard's word: callers pass the zone they mean.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


class Command(IntEnum):
    """The control unit's command byte (§3 of the brief). 7-127 are reserved; 128-255 are user-defined."""

    CONTROL = 1  # centre -> device: clock sync, initialise, spot check; answered by CONFIRM or DENY
    SEND = 2  # device -> centre: alarms and state changes; with an empty ADU, the heartbeat
    CONFIRM = 3
    REQUEST = 4  # centre -> device: a query, answered by RESPONSE or DENY
    RESPONSE = 5
    DENY = 6


def command_known(command: int) -> bool:
    """Whether a receiver takes this command byte; an unknown one (0, 7-127) is denied."""
    return Command.CONTROL <= command <= Command.DENY or 128 <= command <= 255


@dataclass(frozen=True, slots=True)
class TimeLabel:
    """Six binary bytes (not BCD) on the wire: second, minute, hour, day, month, year - 2000.

    Kept as sent, valid or not, so that a frame re-encodes to its own bytes; `to_datetime` checks it.
    """

    second: int
    minute: int
    hour: int
    day: int
    month: int
    year: int  # years after 2000: 0-99

    def __post_init__(self) -> None:
        for offset, value in enumerate(self.to_tuple()):
            if not 0 <= value <= 255:
                raise FieldRangeError("GB/T 26875.3 time label", offset, "a byte 0..255", str(value))

    def to_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (self.second, self.minute, self.hour, self.day, self.month, self.year)

    def to_bytes(self) -> bytes:
        return bytes(self.to_tuple())

    @classmethod
    def from_bytes(cls, data: bytes) -> TimeLabel:
        """The label in six bytes, in wire order."""
        if len(data) != 6:
            raise FieldRangeError("GB/T 26875.3 time label", 0, "6 bytes", f"{len(data)} bytes")
        return cls(data[0], data[1], data[2], data[3], data[4], data[5])

    @classmethod
    def from_datetime(cls, when: datetime) -> TimeLabel:
        """The label for `when` as the wall clock in its own zone shows it (convert to the link's zone first)."""
        if not 2000 <= when.year <= 2099:
            raise FieldRangeError("GB/T 26875.3 time label", 5, "a year 2000..2099", str(when.year))
        return cls(when.second, when.minute, when.hour, when.day, when.month, when.year - 2000)

    def to_datetime(self, zone: tzinfo) -> datetime:
        """The moment the label names, read as wall time in `zone`; FieldRangeError names a field out of range."""
        limits = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
                  ("year", 0, 99))  # fmt: skip
        for offset, ((name, low, high), value) in enumerate(zip(limits, self.to_tuple(), strict=True)):
            if not low <= value <= high:
                raise FieldRangeError("GB/T 26875.3 time label", offset, f"{name} {low}..{high}", str(value))
        try:
            return datetime(self.year + 2000, self.month, self.day, self.hour, self.minute, self.second, tzinfo=zone)
        except ValueError as exc:  # 31 February and the like
            raise FieldRangeError("GB/T 26875.3 time label", 3, "a day of that month", str(self.day)) from exc


@dataclass(frozen=True, slots=True)
class Header:
    """The control unit as read, of a frame that may have failed its checks (enough to deny it)."""

    serial: int
    main_version: int
    user_version: int
    time: TimeLabel
    source: int
    destination: int
    adu_length: int
    command: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame. `adu` stays bytes here: `drivers.gb26875.adu.decode_adu` types it.

    `source` and `destination` are the 48-bit addresses of a device (用传) or a monitoring centre. A frame is
    checked when it is made, so that every Frame can be encoded.
    """

    serial: int
    command: int
    source: int
    destination: int
    time: TimeLabel
    adu: bytes = b""
    main_version: int = 1  # fixed 1 in the 2011 protocol; kept as sent
    user_version: int = 0  # user-defined

    def __post_init__(self) -> None:
        _check_range(2, "a serial number", self.serial, MAX_SERIAL)
        _check_range(4, "a main version", self.main_version, 255)
        _check_range(5, "a user version", self.user_version, 255)
        _check_range(12, "a source address", self.source, MAX_ADDRESS)
        _check_range(18, "a destination address", self.destination, MAX_ADDRESS)
        _check_range(26, "a command byte", self.command, 255)
        if len(self.adu) > MAX_ADU:
            raise FieldRangeError(PART, 24, f"an ADU of at most {MAX_ADU} bytes", f"{len(self.adu)} bytes")


def _check_range(offset: int, what: str, value: int, high: int) -> None:
    if not 0 <= value <= high:
        raise FieldRangeError(PART, offset, f"{what} 0..{high}", str(value))


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The 8-bit arithmetic sum of the control unit and the ADU (bytes 2 .. 26+n of a frame); carries dropped."""
    return sum(data) & 0xFF


def next_serial(serial: int) -> int:
    """The serial number an initiator uses for its next exchange: one more, 65535 wraps to 0."""
    return (serial + 1) & MAX_SERIAL


def encode_frame(frame: Frame) -> bytes:
    """The frame's bytes on the wire, `@@` to `##`."""
    body = (
        frame.serial.to_bytes(2, "little")
        + bytes((frame.main_version, frame.user_version))
        + frame.time.to_bytes()
        + frame.source.to_bytes(6, "little")
        + frame.destination.to_bytes(6, "little")
        + len(frame.adu).to_bytes(2, "little")
        + bytes((frame.command,))
        + frame.adu
    )
    return START + body + bytes((checksum(body),)) + END


def answer(to: Frame | Header, command: int, time: TimeLabel, adu: bytes = b"") -> Frame:
    """The reply to a frame (confirm, deny, response): its serial number echoed, source and destination swapped."""
    return Frame(to.serial, command, to.destination, to.source, time, adu, to.main_version, to.user_version)


def read_header(data: bytes | bytearray) -> Header:
    """The control unit of the frame at the start of `data` (at least 27 bytes, starting with `@@`)."""
    return Header(
        serial=int.from_bytes(data[2:4], "little"),
        main_version=data[4],
        user_version=data[5],
        time=TimeLabel.from_bytes(bytes(data[6:12])),
        source=int.from_bytes(data[12:18], "little"),
        destination=int.from_bytes(data[18:24], "little"),
        adu_length=int.from_bytes(data[24:26], "little"),
        command=data[26],
    )


def _hex(data: bytes | bytearray) -> str:
    return data.hex(" ").upper() if data else "end of data"


def _check_framing(data: bytes | bytearray, header: Header) -> FrameError | None:
    """The checks after the length: end characters and checksum of a complete frame at the start of `data`."""
    n = header.adu_length
    if data[28 + n : 30 + n] != END:
        return FrameError(28 + n, "end characters 23 23 ('##')", _hex(data[28 + n : 30 + n]))
    expected = checksum(data[2 : 27 + n])
    if data[27 + n] != expected:
        return FrameError(27 + n, f"checksum {expected:02X}", f"{data[27 + n]:02X}")
    return None


def _check_command(header: Header) -> FrameError | None:
    if command_known(header.command):
        return None
    return FrameError(26, "a command byte 1..6 or 128..255", str(header.command))


def _length_error(header: Header) -> FrameError | None:
    if header.adu_length <= MAX_ADU:
        return None
    return FrameError(24, f"an ADU length of at most {MAX_ADU}", str(header.adu_length))


def decode_frame(data: bytes) -> Frame:
    """The one frame that `data` holds, exactly; FrameError names the first check it fails."""
    if data[:2] != START:
        raise FrameError(0, "start characters 40 40 ('@@')", _hex(data[:2]))
    if len(data) < MIN_FRAME:
        raise FrameError(len(data), f"at least {MIN_FRAME} bytes", f"{len(data)} bytes")
    header = read_header(data)
    error = _length_error(header)
    if error is None and len(data) != MIN_FRAME + header.adu_length:
        size = MIN_FRAME + header.adu_length
        error = FrameError(24, f"{size} bytes for an ADU length of {header.adu_length}", f"{len(data)} bytes")
    error = error or _check_framing(data, header) or _check_command(header)
    if error is not None:
        raise error
    return _frame(data, header)


def _frame(data: bytes | bytearray, header: Header) -> Frame:
    return Frame(
        header.serial,
        header.command,
        header.source,
        header.destination,
        header.time,
        bytes(data[CONTROL_SIZE : CONTROL_SIZE + header.adu_length]),
        header.main_version,
        header.user_version,
    )


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes of a stream that are not a good frame, dropped by the reader and handed on whole.

    `position` is the stream offset of `data[0]`; `error` names the first failed check, its offset counted from
    `data[0]`. `header` is the control unit as read when the bytes start with `@@` and hold one (a failed checksum,
    an unknown command, an ADU over 1024 bytes): answer a frame with a header with a deny. A header read from
    damaged bytes may be damaged too, so deny only one whose addresses are the link's. A frame with an unknown
    command passed every other check; its bytes are the whole frame.
    """

    position: int
    data: bytes
    error: FrameError
    header: Header | None


class FrameReader:
    """Splits a byte stream into frames, whatever pieces it arrives in.

    Resynchronisation: after a bad frame the reader drops one byte and looks for the next `@@`, so a good frame
    right behind a bad one is never lost. A frame whose length field was damaged could claim up to 1054 bytes and
    hold back the good frames after it until that many had come; so while a frame is incomplete, the reader also
    looks behind it, and a complete good frame there ends the incomplete one as bad. (The cost: a good frame whose
    ADU carries a whole good frame would be cut. No ADU type of the protocol carries raw frames.)
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0  # stream offset of _buffer[0]
        self._behind: list[tuple[int, int]] = []  # '@@' behind an incomplete head: (offset, buffer length it needs)
        self._scanned = 1  # '@@' behind the head looked for up to here
        self._head: Header | None = None  # the control unit of an incomplete frame at the head, read once

    @property
    def pending(self) -> bytes:
        """Bytes received and not yet handed on: the start of a frame, or a lone '@' that may start one."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        """Take the next bytes of the stream; return the frames and bad frames they complete, in stream order."""
        self._buffer += data
        out: list[Frame | BadFrame] = []
        while (item := self._next()) is not None:
            out.append(item)
        return out

    def _take(self, count: int) -> bytes:
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._position += count
        self._behind.clear()
        self._scanned = 1
        self._head = None
        return taken

    def _drop(self, count: int, error: FrameError, header: Header | None) -> BadFrame:
        position = self._position
        return BadFrame(position, self._take(count), error, header)

    def _resync(self, error: FrameError, header: Header) -> BadFrame:
        """Drop a bad frame's first byte and everything up to the next '@@' (or a last '@' that may begin one)."""
        return self._drop(_garbage_end(self._buffer, 1), error, header)

    def _next(self) -> Frame | BadFrame | None:
        buffer = self._buffer
        if buffer[:2] != START:
            end = _garbage_end(buffer, 0)
            if end == 0:
                return None
            return self._drop(end, FrameError(0, "start characters 40 40 ('@@')", _hex(buffer[:2])), None)
        if len(buffer) < CONTROL_SIZE:
            return None
        header = self._head = self._head or read_header(buffer)
        error = _length_error(header)
        if error is not None:
            return self._resync(error, header)
        size = MIN_FRAME + header.adu_length
        if len(buffer) < size:
            behind = self._good_frame_behind()
            if behind is None:
                return None
            cut = FrameError(behind, f"{size} bytes for an ADU length of {header.adu_length}", "a good frame's start")
            return self._drop(behind, cut, header)
        error = _check_framing(buffer, header)
        if error is not None:
            return self._resync(error, header)
        error = _check_command(header)
        if error is not None:
            return self._drop(size, error, header)
        return _frame(self._take(size), header)

    def _good_frame_behind(self) -> int | None:
        """The offset of the first complete frame behind the incomplete head that passes the framing checks.

        Each '@@' behind the head is kept with the buffer length it needs to be looked at again (its control unit,
        then its whole frame), so a frame fed byte by byte costs a comparison per byte and '@@', not a search.
        """
        buffer = self._buffer
        while (start := buffer.find(START, self._scanned)) > 0:
            self._behind.append((start, start + CONTROL_SIZE))
            self._scanned = start + 1
        self._scanned = max(self._scanned, len(buffer) - 1)
        waiting = []
        for start, need in self._behind:
            if len(buffer) < need:
                waiting.append((start, need))
                continue
            header = read_header(buffer[start : start + CONTROL_SIZE])
            if header.adu_length > MAX_ADU:
                continue
            end = start + MIN_FRAME + header.adu_length
            if len(buffer) < end:
                waiting.append((start, end))
            elif _check_framing(buffer[start:end], header) is None:
                return start
        self._behind = waiting
        return None


def _garbage_end(buffer: bytearray, start: int) -> int:
    """Where the bytes that cannot start a frame end: at the first '@@' from `start`, or before a last '@'."""
    end = buffer.find(START, start)
    if end >= 0:
        return end
    return len(buffer) - 1 if buffer.endswith(b"@") else len(buffer)
