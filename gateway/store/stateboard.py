"""The current state of every device, published retained so a late subscriber sees the site at once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from drivers.profile import Quality, Value
from gateway.base.clock import rfc3339_ms
from gateway.base.contract import SCHEMA_STATE, Topics
from gateway.store.records import Reading


@dataclass(slots=True)
class DeviceState:
    """Last known values of one device."""

    profile: str
    online: bool = False
    points: dict[str, tuple[Value, Quality, int]] = field(default_factory=dict)
    wall_ms: int = 0


class StateBoard:
    """Last value wins; the uplink publishes the devices marked dirty."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.devices: dict[str, DeviceState] = {}
        self.dirty: set[str] = set()
        self.changed = asyncio.Event()
        self.retained: dict[str, bytes] = {}  # other retained topics (the open alarms), last value wins
        self._retained_dirty: set[str] = set()

    def set_retained(self, topic: str, payload: bytes) -> None:
        """A retained message for a topic of the gateway's own (not a device's state)."""
        if self.retained.get(topic) == payload:
            return
        self.retained[topic] = payload
        self._retained_dirty.add(topic)
        self.changed.set()

    def register(self, device: str, profile: str, wall_ms: int) -> None:
        """Declare a device; its state is published once the first poll (or the offline verdict) is in."""
        self.devices.setdefault(device, DeviceState(profile, wall_ms=wall_ms))

    def _touch(self, device: str) -> None:
        self.dirty.add(device)
        self.changed.set()

    def apply(self, readings: list[Reading], online: bool | None = None, device: str | None = None) -> None:
        """Fold readings (and an online flag) into the board."""
        for r in readings:
            st = self.devices.setdefault(r.device, DeviceState("unknown"))
            st.points[r.point] = (r.value if r.quality is Quality.GOOD else None, r.quality, r.at.wall_ms)
            st.wall_ms = max(st.wall_ms, r.at.wall_ms)
            self._touch(r.device)
        if online is not None and device is not None:
            st = self.devices[device]
            if st.online != online:
                st.online = online
                self._touch(device)

    def mark_all_dirty(self) -> None:
        """After a reconnect every known retained state is published again."""
        for d, st in self.devices.items():
            if st.points:
                self._touch(d)
        if self.retained:
            self._retained_dirty.update(self.retained)
            self.changed.set()

    def take_dirty(self) -> list[tuple[str, bytes]]:
        """Topics and payloads of the devices changed since the last call."""
        out = []
        for device in sorted(self.dirty):
            st = self.devices[device]
            points = {
                name: {"value": v, "quality": q.value, "ts": rfc3339_ms(ms)} for name, (v, q, ms) in st.points.items()
            }
            body = {
                "device": device,
                "profile": st.profile,
                "online": st.online,
                "points": points,
                "ts": rfc3339_ms(st.wall_ms),
            }
            payload = self.topics.head(SCHEMA_STATE) + json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:]
            out.append((self.topics.state(device), payload.encode()))
        out += [(topic, self.retained[topic]) for topic in sorted(self._retained_dirty)]
        self._retained_dirty.clear()
        self.dirty.clear()
        self.changed.clear()
        return out
