"""Two-level inputs (door contacts, relay contacts) on GPIO pins, debounced by us.

gpiozero's `bounce_time` is ignored by its mock pins, so a debounce left to it could not be tested; ours runs on
the event loop and is the same on every pin factory. gpiozero calls back from its own thread on real pins, so
edges are handed to the loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

from gpiozero import DigitalInputDevice

Contact = Literal["NC", "NO"]
"""NC: the contact is closed in the normal state (door closed, relay energised); NO: closed when active."""


class DebouncedInput:
    """A contact wired between a GPIO pin (internal pull-up) and ground.

    `active` is the abnormal state: a door open, a trouble relay dropped out. With an NC contact a cut wire reads
    active, which is why NC is the default for anything that supervises.

    `on_change(active, monotonic_s)` is called on the event loop once the input has been stable for `debounce_s`;
    the time is that of the first edge of the stable level, so a debounce delays the report, not the timestamp.
    `on_edge(monotonic_s)`, if given, is called on the loop for every raw edge, before the debounce: a contact
    chattering faster than the debounce settles shows there and nowhere else.
    """

    def __init__(
        self,
        name: str,
        pin: int | str,
        contact: Contact,
        debounce_s: float,
        on_change: Callable[[bool, float], None],
        pin_factory: Any = None,
        on_edge: Callable[[float], None] | None = None,
    ) -> None:
        self.name = name
        self._contact = contact
        self._debounce_s = debounce_s
        self._on_change = on_change
        self._on_edge_seen = on_edge
        self._loop = asyncio.get_running_loop()
        self._device = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
        self._timer: asyncio.TimerHandle | None = None
        self._pending_since = 0.0
        self.active: bool = self._read()
        self.changes_seen = 0
        self._device.when_activated = self._edge
        self._device.when_deactivated = self._edge

    def _read(self) -> bool:
        contact_closed = bool(self._device.is_active)
        return not contact_closed if self._contact == "NC" else contact_closed

    def _edge(self, *_args: object) -> None:
        now = time.monotonic()
        self._loop.call_soon_threadsafe(self._on_edge, now)

    def _on_edge(self, at: float) -> None:
        self.changes_seen += 1
        if self._on_edge_seen is not None:
            self._on_edge_seen(at)
        if self._timer is not None:
            self._timer.cancel()
        self._pending_since = at
        self._timer = self._loop.call_later(self._debounce_s, self._settle)

    def _settle(self) -> None:
        self._timer = None
        level = self._read()
        if level != self.active:
            self.active = level
            self._on_change(level, self._pending_since)

    def close(self) -> None:
        """Release the pin."""
        if self._timer is not None:
            self._timer.cancel()
        self._device.close()
