"""A Modbus device read through its profile."""

from __future__ import annotations

from drivers.errors import DeviceError
from drivers.modbus import RegisterReader, RequestPolicy
from drivers.profile import PointValue, Profile, decode


class ProfileMismatch(DeviceError):
    """The device reports a register map version the profile was not written for."""


class ModbusDevice:
    """One device on a bus: reads every block of its profile and decodes the points.

    A read either returns every point or raises; a half-read device is never reported as if whole.
    """

    def __init__(self, name: str, bus: RegisterReader, unit: int, profile: Profile, policy: RequestPolicy) -> None:
        self.name = name
        self.bus = bus
        self.unit = unit
        self.profile = profile
        self.policy = policy

    async def read(self, policy: RequestPolicy | None = None) -> dict[str, PointValue]:
        """Read all blocks and decode; `policy` overrides the device's own (e.g. no retries while offline)."""
        use = policy or self.policy
        raw: dict[str, list[int]] = {}
        for block in self.profile.blocks:
            raw[block.name] = await self.bus.read(self.unit, block.function, block.address, block.count, use)
        values = decode(self.profile, raw)
        if self.profile.map_version is not None and self.profile.map_version_point is not None:
            seen = values[self.profile.map_version_point].value
            if seen != self.profile.map_version:
                point = self.profile.point(self.profile.map_version_point)
                block = next(b for b in self.profile.blocks if b.name == point.block)
                raise ProfileMismatch(
                    self.bus.name,
                    self.unit,
                    block.function,
                    block.address + point.offset,
                    f"map version {seen!r} is not {self.profile.map_version:#06x} of profile {self.profile.model}",
                )
        return values

    async def read_settings(self, policy: RequestPolicy | None = None) -> dict[str, PointValue]:
        """Read the profile's settings blocks (empty if it has none)."""
        use = policy or self.policy
        raw: dict[str, list[int]] = {}
        for block in self.profile.settings_blocks:
            raw[block.name] = await self.bus.read(self.unit, block.function, block.address, block.count, use)
        return decode(self.profile, raw, settings=True)
