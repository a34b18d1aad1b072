"""What a fire panel's status says about its fire, shared by the fire linkage and the alarm book."""

from __future__ import annotations

from drivers.profile import PointValue, Quality


def panel_reset_seen(values: dict[str, PointValue]) -> bool:
    """A fire panel's poll shows a reset: its fire bit clear, and its reset bit set or its first-alarm point gone
    (the level a reset leaves, for panels whose reset bit is too short a pulse to poll)."""
    fire, reset, first = values.get("fire"), values.get("reset"), values.get("first_alarm_point")
    if fire is None or fire.quality is not Quality.GOOD or fire.value is not False:
        return False
    cleared_first = first is not None and first.quality is Quality.GOOD and first.value is None
    return (reset is not None and reset.value is True) or cleared_first
