"""Debounced contacts on mock GPIO pins: polarity, debounce, bounce."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drivers.gpio import DebouncedInput
from simulators.contacts import SimContact


class Changes:
    """Collects reported changes and lets a test await the next one."""

    def __init__(self) -> None:
        self.seen: list[bool] = []
        self.event = asyncio.Event()

    def __call__(self, active: bool, _mono: float) -> None:
        self.seen.append(active)
        self.event.set()

    async def next(self, timeout_s: float = 2.0) -> bool:
        async with asyncio.timeout(timeout_s):
            while not self.seen:
                self.event.clear()
                await self.event.wait()
        return self.seen.pop(0)


@pytest.mark.parametrize("contact", ["NC", "NO"])
async def test_gpio_contact_polarity(pin_factory: Any, contact: str) -> None:
    """NC and NO contacts both report 'active' when the door opens."""
    door = SimContact(pin_factory, 17, contact)  # type: ignore[arg-type]
    changes = Changes()
    inp = DebouncedInput("door", 17, contact, 0.02, changes, pin_factory)  # type: ignore[arg-type]
    try:
        assert inp.active is False
        door.set(True)
        assert await changes.next() is True
        door.set(False)
        assert await changes.next() is False
    finally:
        inp.close()


async def test_gpio_nc_cut_wire_reads_active(pin_factory: Any) -> None:
    """With an NC contact, a cut wire (pin pulled up, nothing to ground) reads as active."""
    changes = Changes()
    inp = DebouncedInput("trouble", 22, "NC", 0.0, changes, pin_factory)
    try:
        assert inp.active is True
    finally:
        inp.close()


async def test_gpio_bounce_reports_one_change(pin_factory: Any) -> None:
    """A bouncing contact that settles open is one change, not many."""
    door = SimContact(pin_factory, 5, "NC")
    changes = Changes()
    inp = DebouncedInput("door", 5, "NC", 0.05, changes, pin_factory)
    try:
        door.bounce([True, False, True, False, True])
        assert await changes.next() is True
        assert inp.changes_seen == 5
        door.set(False)
        assert await changes.next() is False
        assert changes.seen == []  # the bounce left nothing behind
    finally:
        inp.close()


async def test_gpio_glitch_shorter_than_debounce_is_ignored(pin_factory: Any) -> None:
    """Open-and-close within the debounce time produces no event (R10)."""
    door = SimContact(pin_factory, 6, "NC")
    changes = Changes()
    inp = DebouncedInput("door", 6, "NC", 0.05, changes, pin_factory)
    try:
        door.set(True)
        door.set(False)
        door.set(True)  # a real change after the glitch proves the input still works
        assert await changes.next() is True
        assert changes.seen == []
    finally:
        inp.close()
