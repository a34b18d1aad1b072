"""A stand-in for MicroPython's `machine` module on an RP2040, so the field-node firmware runs unchanged on CPython.

Only the firmware's process imports it (tests/test_firmware_node.py puts this folder first on its PYTHONPATH). The
board's wiring comes from the environment:

- `FAKE_RP2_UART`: the serial device (one end of a pseudo-terminal pair) the UART's TX/RX pins are wired to,
  through an RS-485 transceiver whose DE and /RE are tied to GPIO `FAKE_RP2_DE_PIN`. As on the real transceiver,
  bytes written while DE is low never reach the line, and bytes arriving while DE is high are not received.
- `FAKE_RP2_ADC`: a JSON file {"0": level, ...} holding the level (0..65535) each ADC channel reads; the test
  rewrites it to open a door or cut a loop. Channel 4, the temperature sensor, reads 0.706 V (27 Cel) unless set.
- The watchdog is a real one: a process timer that ends the process when `feed` is late, as a reset would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import termios
import tty
from types import FrameType
from typing import ClassVar

PWRON_RESET = 1
WDT_RESET = 3

_pins: dict[int, Pin] = {}


def reset_cause() -> int:
    """Every start of the stand-in is a power-on."""
    return PWRON_RESET


class Pin:
    """A GPIO pin; output values are kept so the transceiver can look at DE."""

    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, pin_id: int, mode: int = IN, pull: int | None = None, value: int | None = None) -> None:
        self.id = pin_id
        self.mode = mode
        self._value = value or (1 if pull == Pin.PULL_UP else 0)  # nothing is wired to an input: pulled up or low
        _pins[pin_id] = self

    def value(self, value: int | None = None) -> int:
        if value is not None:
            self._value = 1 if value else 0
        return self._value


def _de_high() -> bool:
    pin = _pins.get(int(os.environ["FAKE_RP2_DE_PIN"]))
    return pin is not None and pin.mode == Pin.OUT and pin.value() == 1


class UART:
    """A UART wired through an RS-485 transceiver to the pseudo-terminal named by FAKE_RP2_UART."""

    def __init__(self, uart_id: int, baudrate: int = 9600, bits: int = 8, **options: object) -> None:
        self.id = uart_id
        self.baudrate = baudrate
        self.options = options
        self._fd = os.open(os.environ["FAKE_RP2_UART"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        self._rx = bytearray()

    def _pull(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                return
            if not data:
                return
            if not _de_high():  # the receiver is off while the node drives the line
                self._rx.extend(data)

    def any(self) -> int:
        self._pull()
        return len(self._rx)

    def read(self, nbytes: int | None = None) -> bytes | None:
        self._pull()
        if not self._rx:
            return None
        count = len(self._rx) if nbytes is None else min(nbytes, len(self._rx))
        data = bytes(self._rx[:count])
        del self._rx[:count]
        return data

    def write(self, buf: bytes) -> int:
        if not _de_high():  # driver disabled: the bytes go nowhere
            return len(buf)
        view = memoryview(buf)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                os.set_blocking(self._fd, True)
                view = view[os.write(self._fd, view) :]
                os.set_blocking(self._fd, False)
        return len(buf)

    def flush(self) -> None:
        termios.tcdrain(self._fd)


class ADC:
    """An ADC channel whose level comes from the FAKE_RP2_ADC file, reread whenever it changes."""

    _levels: ClassVar[dict[str, int]] = {}
    _stamp: ClassVar[int] = -1

    def __init__(self, channel: int) -> None:
        self.channel = channel

    def read_u16(self) -> int:
        path = os.environ["FAKE_RP2_ADC"]
        stamp = os.stat(path).st_mtime_ns
        if stamp != ADC._stamp:
            with open(path, encoding="utf-8") as f:
                ADC._levels = {str(k): int(v) for k, v in json.load(f).items()}
            ADC._stamp = stamp
        default = round(0.706 / 3.3 * 65535) if self.channel == 4 else 0
        return ADC._levels.get(str(self.channel), default)


class WDT:
    """The hardware watchdog: unless fed within `timeout` ms, the process ends (exit 75) as the chip would reset."""

    def __init__(self, wdt_id: int = 0, timeout: int = 5000) -> None:
        self.timeout_s = timeout / 1000
        signal.signal(signal.SIGALRM, self._expired)
        self.feed()

    def feed(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)

    @staticmethod
    def _expired(_signum: int, _frame: FrameType | None) -> None:
        sys.stderr.write("fake rp2: watchdog reset\n")
        os._exit(75)
