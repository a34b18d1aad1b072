"""What the gateway records: readings (telemetry) and events, each timestamped twice."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Literal

from drivers.profile import Quality, Value
from gateway.base.clock import rfc3339_ms

Severity = Literal["alarm", "warning", "info"]
EventState = Literal["raised", "cleared", "changed"]
Detail = dict[str, str | int | float | bool | None]


@dataclass(frozen=True, slots=True)
class Stamp:
    """When something was seen: wall time for people and the platform, monotonic time for intervals."""

    wall_ms: int
    mono: float
    clock_synced: bool


@dataclass(frozen=True, slots=True)
class Reading:
    """One point's value at one time."""

    device: str
    point: str
    value: Value
    quality: Quality
    at: Stamp

    def body(self) -> str:
        """The JSON object stored in the outbox, without the sequence number (assigned on commit).

        Built from pieces rather than with json.dumps of a dict: readings are the bulk of the gateway's work, and
        this is the same JSON at a third of the cost (tests compare the two).
        """
        value = self.value if self.quality is Quality.GOOD else None
        return (
            f"{_reading_head(self.device, self.point)}{_json_scalar(value)},"
            f'"quality":"{self.quality.value}","ts":"{rfc3339_ms(self.at.wall_ms)}",'
            f'"clock_synced":{"true" if self.at.clock_synced else "false"}}}'
        )


@functools.lru_cache(maxsize=8192)
def _reading_head(device: str, point: str) -> str:
    return (
        f'{{"device":{json.dumps(device, ensure_ascii=False)},"point":{json.dumps(point, ensure_ascii=False)},"value":'
    )


def _json_scalar(value: Value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)  # what json.dumps writes for a finite float
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Event:
    """A change the platform must act on or keep: a fire, a fault, a device gone offline, a door opened."""

    cls: str
    severity: Severity
    state: EventState
    device: str
    point: str
    value: Value
    quality: Quality
    at: Stamp
    detail: Detail = field(default_factory=dict)

    @property
    def is_alarm(self) -> bool:
        """Alarms are committed with fsync and published ahead of everything else."""
        return self.severity == "alarm"

    def body(self, test: bool = False) -> str:
        """The JSON object stored in the outbox, without the sequence number; `test` marks what a walk test made."""
        obj: dict[str, object] = {
            "class": self.cls,
            "severity": self.severity,
            "state": self.state,
            "device": self.device,
            "point": self.point,
            "value": self.value if self.quality is Quality.GOOD else None,
            "quality": self.quality.value,
            "ts": rfc3339_ms(self.at.wall_ms),
            "clock_synced": self.at.clock_synced,
        }
        if self.detail:
            obj["detail"] = self.detail
        if test:
            obj["test"] = True
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
