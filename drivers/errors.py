"""Errors raised by drivers. Messages name the bus, the device unit and the register."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error campus-edge raises on purpose."""


class DriverError(GatewayError):
    """A driver could not do what was asked of the hardware."""


class ProfileError(DriverError):
    """A device profile data file is malformed."""


class BusError(DriverError):
    """A bus could not be opened or used at all."""

    def __init__(self, bus: str, reason: str) -> None:
        self.bus = bus
        self.reason = reason
        super().__init__(f"bus {bus}: {reason}")


class DeviceError(DriverError):
    """One transaction with one device failed."""

    def __init__(self, bus: str, unit: int, function: int, address: int, reason: str) -> None:
        self.bus = bus
        self.unit = unit
        self.function = function
        self.address = address
        self.reason = reason
        super().__init__(f"bus {bus} unit {unit}: FC{function:02d} register {address}: {reason}")


class DeviceTimeout(DeviceError, TimeoutError):
    """No valid reply within the device's response timeout."""


class DeviceException(DeviceError):
    """The device answered with a Modbus exception code."""

    def __init__(self, bus: str, unit: int, function: int, address: int, code: int) -> None:
        self.code = code
        super().__init__(bus, unit, function, address, f"exception {code:02d} ({exception_name(code)})")


class MalformedReply(DeviceError):
    """The device answered, but not with what was asked (wrong length, unit or function)."""


_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


def exception_name(code: int) -> str:
    """Return the Modbus specification's name for an exception code."""
    return _EXCEPTION_NAMES.get(code, "unknown exception")


class CodecError(DriverError):
    """Bytes from a wire do not form what its protocol says: names the part, the offset and what was expected."""

    def __init__(self, part: str, offset: int, expected: str, found: str) -> None:
        self.part = part
        self.offset = offset
        self.expected = expected
        self.found = found
        super().__init__(f"{part}: offset {offset}: expected {expected}, found {found}")


class FrameError(CodecError):
    """A GB/T 26875.3 frame fails a check of its control unit, checksum or start/end characters (deny it)."""

    def __init__(self, offset: int, expected: str, found: str) -> None:
        super().__init__("GB/T 26875.3 frame", offset, expected, found)


class AduError(CodecError):
    """A GB/T 26875.3 application data unit does not hold the objects its type flag and count promise."""


class FieldRangeError(CodecError, ValueError):
    """A value to be sent does not fit its field on the wire (offset: the field's place in its part)."""
