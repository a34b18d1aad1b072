"""Door contacts and relay contacts as driven mock GPIO pins.

The gateway's input has the pull-up on and the contact to ground: a closed contact reads low. gpiozero's mock pin
forgets a driven level when the pull is set; a real contact to ground does not, so `ContactPin` keeps it.
"""

from __future__ import annotations

from typing import Any, Literal

from gpiozero.pins.mock import MockFactory, MockPin


class ContactPin(MockPin):  # type: ignore[misc]
    """A mock pin whose level, once driven by a contact, wins over the pull resistor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.contact_level: bool | None = None
        super().__init__(*args, **kwargs)

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.contact_level is not None:
            self._change_state(self.contact_level)

    def drive(self, level: bool) -> None:
        """Drive the pin as the field wiring does."""
        self.contact_level = level
        if self.function != "input":
            self._change_state(level)
        elif level:
            self.drive_high()
        else:
            self.drive_low()


def contact_pin_factory() -> MockFactory:
    """A mock pin factory whose pins can be driven by simulated contacts."""
    return MockFactory(pin_class=ContactPin)


class SimContact:
    """A contact on a mock pin. `active` is the abnormal state: door open, trouble relay dropped out."""

    def __init__(self, pin_factory: Any, pin: int | str, contact: Literal["NC", "NO"]) -> None:
        self._pin: ContactPin = pin_factory.pin(pin)
        self._contact = contact
        self.active = False
        self.set(False)

    def set(self, active: bool) -> None:
        """Drive the pin as the contact would."""
        self.active = active
        closed = not active if self._contact == "NC" else active
        self._pin.drive(not closed)

    def bounce(self, levels: list[bool]) -> None:
        """Drive a quick series of levels, as a bouncing reed contact does."""
        for level in levels:
            self.set(level)
