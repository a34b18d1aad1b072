"""GB/T 26875.3-2011 application data units (ADU): a type flag, an object count, and that many information objects.

Each type has its own object layout, fixed or length-prefixed (types 6 and 26), with or without a 6-byte time tag,
so an ADU is read object by object, never by dividing its length by the count. A type without a layout here
(reserved, user-defined 128-254, or new in a later edition) is kept as a `RawAdu`, never an error. Objects keep
every byte as sent (descriptions too), so a decoded ADU encodes to the same bytes.

Multi-byte integers are little-endian. A component address is 4 bytes, kept as one integer; in the published
example its first 16-bit word is the zone (区) and the second the position (号), which vendors may swap.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, ClassVar

from drivers.errors import AduError, FieldRangeError
from drivers.gb26875.frame import TimeLabel

PART = "GB/T 26875.3 ADU"
TEXT_ENCODING = "gb18030"  # GB 18030-2005
DESCRIPTION_SIZE = 31

# Wire codes of object fields: what each takes on the wire and holds in Python.
_RANGES = {"u8": (0, 0xFF, 1), "u16": (0, 0xFFFF, 2), "s16": (-0x8000, 0x7FFF, 2), "u32": (0, 0xFFFF_FFFF, 4)}


class AduType(IntEnum):
    """The type flags with a layout here. Up (device -> centre) 1-28, down (centre -> device) 61-91."""

    SYSTEM_STATUS = 1
    COMPONENT_STATUS = 2
    ANALOG_VALUE = 3
    PANEL_OPERATION = 4
    PANEL_VERSION = 5
    SYSTEM_CONFIG = 6
    COMPONENT_CONFIG = 7
    PANEL_TIME = 8
    TRANSMITTER_STATE = 21
    TRANSMITTER_OPERATION = 24
    TRANSMITTER_VERSION = 25
    TRANSMITTER_CONFIG = 26
    TRANSMITTER_TIME = 28
    READ_SYSTEM_STATUS = 61
    READ_COMPONENT_STATUS = 62
    READ_ANALOG_VALUE = 63
    READ_PANEL_OPERATIONS = 64
    READ_PANEL_VERSION = 65
    READ_SYSTEM_CONFIG = 66
    READ_COMPONENT_CONFIG = 67
    READ_PANEL_TIME = 68
    READ_TRANSMITTER_STATE = 81
    READ_TRANSMITTER_OPERATIONS = 84
    READ_TRANSMITTER_VERSION = 85
    READ_TRANSMITTER_CONFIG = 86
    READ_TRANSMITTER_TIME = 88
    INITIALISE_TRANSMITTER = 89
    SYNC_CLOCK = 90
    SPOT_CHECK = 91  # 查岗


class InfoObject:
    """One information object; `WIRE` gives the wire code of each dataclass field, in order."""

    __slots__ = ()
    WIRE: ClassVar[tuple[str, ...]]
    WHAT: ClassVar[str]

    def __post_init__(self) -> None:
        offset = 0
        for field, code in zip(fields(self), self.WIRE, strict=True):  # type: ignore[arg-type]
            offset += _check_field(self.WHAT, offset, field.name, code, getattr(self, field.name))

    def encode(self) -> bytes:
        """The object's bytes on the wire."""
        out = bytearray()
        for field, code in zip(fields(self), self.WIRE, strict=True):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if code == "time":
                out += value.to_bytes()
            elif code == "text31":
                out += value
            elif code == "text":
                out += bytes((len(value),)) + value
            else:
                out += value.to_bytes(_RANGES[code][2], "little", signed=code == "s16")
        return bytes(out)

    @classmethod
    def read(cls, data: bytes, offset: int, part: str) -> tuple[Any, int]:
        """The object at `offset` of `data` and the offset after it; AduError when the bytes run out."""
        need = 0
        for code in cls.WIRE:
            need += _size(code, data, offset + need)
        if offset + need > len(data):
            raise AduError(part, offset, f"{need} bytes for {cls.WHAT}", f"{len(data) - offset} bytes")
        values: list[object] = []
        for code in cls.WIRE:
            size = _size(code, data, offset)
            raw = data[offset : offset + size]
            if code == "time":
                values.append(TimeLabel.from_bytes(raw))
            elif code == "text31":
                values.append(raw)
            elif code == "text":
                values.append(raw[1:])
            else:
                values.append(int.from_bytes(raw, "little", signed=code == "s16"))
            offset += size
        return cls(*values), offset


def _size(code: str, data: bytes, offset: int) -> int:
    if code == "time":
        return 6
    if code == "text31":
        return DESCRIPTION_SIZE
    if code == "text":  # one length byte L, then L bytes
        return 1 + data[offset] if offset < len(data) else 1
    return _RANGES[code][2]


def _check_field(what: str, offset: int, name: str, code: str, value: object) -> int:
    """Check one field's value against its wire code; return its size on the wire."""
    part = f"GB/T 26875.3 {what}"
    if code == "time":
        if not isinstance(value, TimeLabel):
            raise FieldRangeError(part, offset, f"{name}: a TimeLabel", type(value).__name__)
        return 6
    if code in ("text31", "text"):
        if not isinstance(value, bytes):
            raise FieldRangeError(part, offset, f"{name}: bytes", type(value).__name__)
        if code == "text31" and len(value) != DESCRIPTION_SIZE:
            found = f"{len(value)} bytes"
            raise FieldRangeError(part, offset, f"{name}: {DESCRIPTION_SIZE} bytes (see pack_text)", found)
        if code == "text" and len(value) > 0xFF:
            raise FieldRangeError(part, offset, f"{name}: at most 255 bytes", f"{len(value)} bytes")
        return DESCRIPTION_SIZE if code == "text31" else 1 + len(value)
    low, high, size = _RANGES[code]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FieldRangeError(part, offset, f"{name} {low}..{high}", repr(value))
    return size


def pack_text(text: str, size: int = DESCRIPTION_SIZE) -> bytes:
    """`text` in GB 18030, cut to `size` bytes on a character boundary and padded with NUL bytes."""
    out = bytearray()
    for char in text:
        encoded = char.encode(TEXT_ENCODING)
        if len(out) + len(encoded) > size:
            break
        out += encoded
    return bytes(out.ljust(size, b"\x00"))


def unpack_text(raw: bytes) -> str:
    """The text of a GB 18030 field: up to the first NUL, trailing spaces trimmed, bad bytes shown as U+FFFD."""
    return raw.split(b"\x00", 1)[0].decode(TEXT_ENCODING, errors="replace").rstrip(" ")


def split_address(address: int) -> tuple[int, int]:
    """A component address's two 16-bit words in wire order; in the published example, (zone 区, position 号)."""
    return address & 0xFFFF, address >> 16


def join_address(word0: int, word1: int) -> int:
    """The component address whose words are `word0` (first on the wire) and `word1`."""
    return word0 | word1 << 16


# Upstream objects (device -> centre)


@dataclass(frozen=True, slots=True)
class SystemStatus(InfoObject):
    """Type 1: the state of one building fire-protection system (a panel); status bits in tables.status_bits."""

    WIRE = ("u8", "u8", "u16", "time")
    WHAT = "system status"
    system_type: int
    system_address: int
    status: int  # bit 0 = 1 is normal operation, 0 is test: 0x0002 is "fire, in test"
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class ComponentStatus(InfoObject):
    """Type 2: the state of one component (a detector, a call point, a module) of a system."""

    WIRE = ("u8", "u8", "u8", "u32", "u16", "text31", "time")
    WHAT = "component status"
    system_type: int
    system_address: int
    component_type: int
    component_address: int
    status: int  # bits 0-7 as system status, bit 8 power fault
    description: bytes  # 31 bytes of GB 18030 as sent; unpack_text reads it
    time: TimeLabel

    @property
    def description_text(self) -> str:
        return unpack_text(self.description)


@dataclass(frozen=True, slots=True)
class AnalogValue(InfoObject):
    """Type 3: one measured value of a component; tables.analog_type gives the quantity, unit and resolution."""

    WIRE = ("u8", "u8", "u8", "u32", "u8", "s16", "time")
    WHAT = "component analog value"
    system_type: int
    system_address: int
    component_type: int
    component_address: int
    analog_type: int
    value: int  # in steps of the type's resolution: 573 at 0.1 °C is 57.3 °C
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class PanelOperation(InfoObject):
    """Type 4: an operation at a panel (reset, silence, ...), flag bits in tables.status_bits."""

    WIRE = ("u8", "u8", "u8", "u8", "time")
    WHAT = "panel operation"
    system_type: int
    system_address: int
    flags: int
    operator: int
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class PanelVersion(InfoObject):
    """Type 5: a panel's software version, main.minor, two binary bytes."""

    WIRE = ("u8", "u8", "u8", "u8")
    WHAT = "panel software version"
    system_type: int
    system_address: int
    main: int
    minor: int


@dataclass(frozen=True, slots=True)
class SystemConfig(InfoObject):
    """Type 6: a system's configuration text (GB 18030, length-prefixed)."""

    WIRE = ("u8", "u8", "text")
    WHAT = "system configuration"
    system_type: int
    system_address: int
    config: bytes  # GB 18030 as sent, up to 255 bytes

    @property
    def config_text(self) -> str:
        return unpack_text(self.config)


@dataclass(frozen=True, slots=True)
class ComponentConfig(InfoObject):
    """Type 7: a component's configuration: its type, address and description; no time tag."""

    WIRE = ("u8", "u8", "u8", "u32", "text31")
    WHAT = "component configuration"
    system_type: int
    system_address: int
    component_type: int
    component_address: int
    description: bytes

    @property
    def description_text(self) -> str:
        return unpack_text(self.description)


@dataclass(frozen=True, slots=True)
class PanelTime(InfoObject):
    """Type 8: a panel's clock."""

    WIRE = ("u8", "u8", "time")
    WHAT = "panel system time"
    system_type: int
    system_address: int
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class TransmitterState(InfoObject):
    """Type 21: the transmission device's (用传's) own state; bit 0 = 1 is normal monitoring, 0 is test."""

    WIRE = ("u8", "time")
    WHAT = "transmission device state"
    state: int
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class TransmitterOperation(InfoObject):
    """Type 24: an operation at the transmission device; bit 5 is the answer to a spot check (查岗应答)."""

    WIRE = ("u8", "u8", "time")
    WHAT = "transmission device operation"
    flags: int
    operator: int
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class TransmitterVersion(InfoObject):
    """Type 25: the transmission device's software version, main.minor."""

    WIRE = ("u8", "u8")
    WHAT = "transmission device software version"
    main: int
    minor: int


@dataclass(frozen=True, slots=True)
class TransmitterConfig(InfoObject):
    """Type 26: the transmission device's configuration text (GB 18030, length-prefixed)."""

    WIRE = ("text",)
    WHAT = "transmission device configuration"
    config: bytes  # GB 18030 as sent, up to 255 bytes

    @property
    def config_text(self) -> str:
        return unpack_text(self.config)


@dataclass(frozen=True, slots=True)
class TransmitterTime(InfoObject):
    """Type 28: the transmission device's clock."""

    WIRE = ("time",)
    WHAT = "transmission device system time"
    time: TimeLabel


# Downstream objects (centre -> device)


@dataclass(frozen=True, slots=True)
class SystemQuery(InfoObject):
    """Types 61, 65, 66, 68: which system to read (status, software version, configuration, time)."""

    WIRE = ("u8", "u8")
    WHAT = "system query"
    system_type: int
    system_address: int


@dataclass(frozen=True, slots=True)
class ComponentQuery(InfoObject):
    """Types 62, 63, 67: which component to read (status, analog values, configuration); no component type."""

    WIRE = ("u8", "u8", "u32")
    WHAT = "component query"
    system_type: int
    system_address: int
    component_address: int


@dataclass(frozen=True, slots=True)
class OperationQuery(InfoObject):
    """Type 64: read a panel's operation records: how many (at most 102), from when."""

    WIRE = ("u8", "u8", "u8", "time")
    WHAT = "panel operation query"
    system_type: int
    system_address: int
    count: int
    start: TimeLabel


@dataclass(frozen=True, slots=True)
class TransmitterQuery(InfoObject):
    """Types 81, 85, 86, 88, 89: read the transmission device's state, version, configuration or time, or
    initialise it. One reserved byte, 0, kept as sent."""

    WIRE = ("u8",)
    WHAT = "transmission device query"
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class TransmitterOperationQuery(InfoObject):
    """Type 84: read the transmission device's operation records: how many (at most 102), from when."""

    WIRE = ("u8", "time")
    WHAT = "transmission device operation query"
    count: int
    start: TimeLabel


@dataclass(frozen=True, slots=True)
class ClockSync(InfoObject):
    """Type 90: set the transmission device's clock. A 6-byte time, as the published example and a codec send
    it (the summary's table shows one reserved byte instead)."""

    WIRE = ("time",)
    WHAT = "clock sync"
    time: TimeLabel


@dataclass(frozen=True, slots=True)
class SpotCheck(InfoObject):
    """Type 91: spot check of the guard on duty (查岗). One byte, read as the minutes to answer in (the example
    sends 10; the summary's table shows a reserved byte)."""

    WIRE = ("u8",)
    WHAT = "spot check"
    minutes: int


LAYOUTS: dict[int, type[InfoObject]] = {
    AduType.SYSTEM_STATUS: SystemStatus,
    AduType.COMPONENT_STATUS: ComponentStatus,
    AduType.ANALOG_VALUE: AnalogValue,
    AduType.PANEL_OPERATION: PanelOperation,
    AduType.PANEL_VERSION: PanelVersion,
    AduType.SYSTEM_CONFIG: SystemConfig,
    AduType.COMPONENT_CONFIG: ComponentConfig,
    AduType.PANEL_TIME: PanelTime,
    AduType.TRANSMITTER_STATE: TransmitterState,
    AduType.TRANSMITTER_OPERATION: TransmitterOperation,
    AduType.TRANSMITTER_VERSION: TransmitterVersion,
    AduType.TRANSMITTER_CONFIG: TransmitterConfig,
    AduType.TRANSMITTER_TIME: TransmitterTime,
    AduType.READ_SYSTEM_STATUS: SystemQuery,
    AduType.READ_COMPONENT_STATUS: ComponentQuery,
    AduType.READ_ANALOG_VALUE: ComponentQuery,
    AduType.READ_PANEL_OPERATIONS: OperationQuery,
    AduType.READ_PANEL_VERSION: SystemQuery,
    AduType.READ_SYSTEM_CONFIG: SystemQuery,
    AduType.READ_COMPONENT_CONFIG: ComponentQuery,
    AduType.READ_PANEL_TIME: SystemQuery,
    AduType.READ_TRANSMITTER_STATE: TransmitterQuery,
    AduType.READ_TRANSMITTER_OPERATIONS: TransmitterOperationQuery,
    AduType.READ_TRANSMITTER_VERSION: TransmitterQuery,
    AduType.READ_TRANSMITTER_CONFIG: TransmitterQuery,
    AduType.READ_TRANSMITTER_TIME: TransmitterQuery,
    AduType.INITIALISE_TRANSMITTER: TransmitterQuery,
    AduType.SYNC_CLOCK: ClockSync,
    AduType.SPOT_CHECK: SpotCheck,
}


@dataclass(frozen=True, slots=True)
class Adu:
    """An ADU of a type with a layout: its objects, each of the class `LAYOUTS` gives for the type."""

    type: int
    objects: tuple[InfoObject, ...]

    def __post_init__(self) -> None:
        layout = LAYOUTS.get(self.type)
        if layout is None:
            raise FieldRangeError(PART, 0, "a type flag with a layout (else use RawAdu)", str(self.type))
        if len(self.objects) > 0xFF:
            raise FieldRangeError(PART, 1, "at most 255 objects", str(len(self.objects)))
        for index, obj in enumerate(self.objects, start=1):
            if not isinstance(obj, layout):
                expected = f"object {index}: a {layout.__name__} for type {self.type}"
                raise FieldRangeError(PART, 2, expected, type(obj).__name__)


@dataclass(frozen=True, slots=True)
class RawAdu:
    """An ADU kept as bytes: a type without a layout here (reserved, user-defined), its count and its objects."""

    type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF:
            raise FieldRangeError(PART, 0, "a type flag 0..255", str(self.type))
        if not 0 <= self.count <= 0xFF:
            raise FieldRangeError(PART, 1, "an object count 0..255", str(self.count))


def encode_adu(adu: Adu | RawAdu) -> bytes:
    """The ADU's bytes, to go into a Frame (which refuses more than 1024)."""
    if isinstance(adu, RawAdu):
        return bytes((adu.type, adu.count)) + adu.body
    return bytes((adu.type, len(adu.objects))) + b"".join(obj.encode() for obj in adu.objects)


def decode_adu(data: bytes) -> Adu | RawAdu:
    """The ADU in `data` (a frame's whole ADU); AduError names the type, the object and the offset that fail.

    An empty ADU (a confirm, a deny, a heartbeat) has no type: check `frame.adu` before decoding it.
    """
    if len(data) < 2:
        raise AduError(PART, len(data), "a type flag and an object count", f"{len(data)} bytes")
    type_flag, count = data[0], data[1]
    layout = LAYOUTS.get(type_flag)
    if layout is None:
        return RawAdu(type_flag, count, bytes(data[2:]))
    objects = []
    offset = 2
    for index in range(1, count + 1):
        obj, offset = layout.read(data, offset, f"{PART} type {type_flag}, object {index} of {count}")
        objects.append(obj)
    if offset != len(data):
        extra = len(data) - offset
        raise AduError(f"{PART} type {type_flag}", offset, f"the end after {count} objects", f"{extra} more bytes")
    return Adu(type_flag, tuple(objects))
