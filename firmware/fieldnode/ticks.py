"""Tick counters: MicroPython's own where they exist, the same arithmetic on CPython for the host tests.

MicroPython's `time.ticks_ms()` and `ticks_us()` wrap (every 2**30 ticks on 32-bit ports such as the RP2040), so
intervals are always taken with `ticks_diff`, never by subtraction. The host stand-ins wrap at the same period,
so the firmware's wrap handling runs in the host tests too.
"""

import time

PERIOD = 1 << 30
_HALF = PERIOD >> 1


def _host_diff(end: int, start: int) -> int:
    return ((end - start + _HALF) & (PERIOD - 1)) - _HALF


def _host_add(ticks: int, delta: int) -> int:
    return (ticks + delta) & (PERIOD - 1)


def _host_ms() -> int:
    return int(getattr(time, "monotonic_ns")() // 1_000_000) & (PERIOD - 1)  # noqa: B009 (not in MicroPython's stubs)


def _host_us() -> int:
    return int(getattr(time, "monotonic_ns")() // 1_000) & (PERIOD - 1)  # noqa: B009


def _host_sleep_ms(ms: int) -> None:
    time.sleep(ms / 1000)


ticks_diff = getattr(time, "ticks_diff", _host_diff)
ticks_add = getattr(time, "ticks_add", _host_add)
ticks_ms = getattr(time, "ticks_ms", _host_ms)
ticks_us = getattr(time, "ticks_us", _host_us)
sleep_ms = getattr(time, "sleep_ms", _host_sleep_ms)
