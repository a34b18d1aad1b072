"""A progress bar on stderr for long commissioning steps (a scan of 247 units takes a minute or more).

On a terminal it redraws one line in place; elsewhere (a log file, a pipe, a test) it writes a plain line at each
tenth of the way, so a captured log still shows that the command was moving.
"""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.base.i18n import _

_WIDTH = 30


class Progress:
    """Counts `total` steps under a label."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(1, total)
        self.stream = stream or sys.stderr
        self.done = 0
        self.found = 0
        self._tty = self.stream.isatty()
        self._last_tenth = -1

    def step(self, unit: int, found: bool) -> None:
        """One unit id done; `found`: it answered."""
        self.done += 1
        self.found += found
        if self._tty:
            filled = _WIDTH * self.done // self.total
            bar = "#" * filled + "-" * (_WIDTH - filled)
            status = _("unit {unit}, {found} found", unit=unit, found=self.found)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {status}\x1b[K")
            self.stream.flush()
            return
        tenth = 10 * self.done // self.total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            status = _("{done}/{total} units, {found} found", done=self.done, total=self.total, found=self.found)
            self.stream.write(f"{self.label}: {status}\n")
            self.stream.flush()

    def close(self) -> None:
        """End the line on a terminal."""
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
