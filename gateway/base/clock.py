"""Wall time for payloads, and whether the system clock can be trusted.

A Raspberry Pi has no real-time clock: until NTP (or GPS, or the platform) sets the clock, wall time may be days
off. Readings carry that flag; intervals always use the monotonic clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from datetime import UTC, datetime

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux): the fields we read come first; the rest is padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


def kernel_clock_synced() -> bool:
    """Ask the kernel (adjtimex, read-only) whether NTP has synchronised the clock."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    tx = _Timex()
    state = libc.adjtimex(ctypes.byref(tx))
    return state not in (-1, _TIME_ERROR) and not (tx.status & _STA_UNSYNC)


class Clock:
    """Wall and monotonic time, and the synchronisation flag, re-checked every `recheck_s` seconds."""

    def __init__(self, assume_synced: bool | None = None, recheck_s: float = 10.0) -> None:
        self._assume = assume_synced
        self._recheck_s = recheck_s
        self._synced = False
        self._checked_at = -1e9

    @staticmethod
    def wall_ms() -> int:
        """Milliseconds since the epoch, UTC."""
        return time.time_ns() // 1_000_000

    @staticmethod
    def mono() -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def synced(self) -> bool:
        """Whether wall time can be trusted now."""
        if self._assume is not None:
            return self._assume
        now = time.monotonic()
        if now - self._checked_at >= self._recheck_s:
            self._synced = kernel_clock_synced()
            self._checked_at = now
        return self._synced


_last_formatted: tuple[int, str] = (-1, "")


def rfc3339_ms(wall_ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds, e.g. 2026-11-28T09:30:00.125Z.

    The readings of one poll share their time: the last result is kept, as formatting was a tenth of a poll's cost.
    """
    global _last_formatted  # noqa: PLW0603 - a one-entry cache
    if _last_formatted[0] == wall_ms:
        return _last_formatted[1]
    dt = datetime.fromtimestamp(wall_ms / 1000, tz=UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall_ms % 1000:03d}Z"
    _last_formatted = (wall_ms, text)
    return text
