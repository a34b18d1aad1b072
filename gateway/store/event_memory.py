"""The last value each event point reported, kept across restarts.

Without it a fire raised before a restart (or before a device went offline) and gone after it would never be
cleared at the platform: a fresh tracker has nothing to compare with and stays silent about a normal value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from drivers.profile import Value
from gateway.base.statefile import load_json, save_json
from gateway.store.records import Event

log = logging.getLogger(__name__)

# Events about the gateway itself, not a point's state; and those that name a point without being its state: the
# alarm book's lifecycle (`alarm`, value "raised" ... "closed", kept in alarms.json) and the audit of commands. Kept
# here, an alarm's "raised" took the place of its source's True: a fire relay released during a restart was then
# never cleared.
_NOT_REMEMBERED = frozenset({"gap", "store", "online", "offline", "alarm", "command"})


class EventMemory:
    """A small JSON file, {device: {point: value}}, rewritten atomically when a remembered value changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, dict[str, Value]] = {}
        try:
            data = load_json(path)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s): starting without remembered event states", path, exc)
            return
        if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
            self.values = data
        else:
            log.warning("%s: expected {device: {point: value}}: starting without remembered event states", path)

    def of(self, device: str) -> dict[str, Value]:
        """What `device`'s event points last reported."""
        return dict(self.values.get(device, {}))

    def remember(self, events: Iterable[Event]) -> None:
        """Keep the values of events just committed; write the file only if one changed."""
        changed = False
        for ev in events:
            if ev.cls in _NOT_REMEMBERED or ev.value is None:
                continue
            points = self.values.setdefault(ev.device, {})
            if points.get(ev.point) != ev.value:
                points[ev.point] = ev.value
                changed = True
        if changed:
            self._save()

    def _save(self) -> None:
        # A full disk must not stop the events themselves, which are already in the outbox.
        save_json(self.path, self.values, "event states")
