"""Keeping the gateway's long-running parts alive through their own bugs and surprises.

A poller or the uplink that dies of an unexpected error (a SQLite read failing on a worn SD card, a library bug)
must not take the whole gateway, and with it fire alarm reporting, down with it; nor must it spin. Each is run
again after a growing delay, loudly. Cancellation is never caught: it is how the gateway stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Supervisor:
    """Runs parts, restarts the ones that fail, counts restarts by name."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    restarts: dict[str, int] = field(default_factory=dict)  # of the parts that failed at least once
    last_error: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # every part run, in the order they started

    def restart_counts(self) -> dict[str, int]:
        """Every part run so far and how often it was restarted (0: never failed), for health and the metrics: a
        part that keeps failing shows there before anyone reads the log."""
        return {name: self.restarts.get(name, 0) for name in self.kept}

    async def keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Await `run()`; when it fails, log it and call it again after a delay that grows while it keeps failing."""
        if name not in self.kept:
            self.kept.append(name)
        delay = self.first_delay_s
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await run()
            except Exception as exc:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.last_error[name] = f"{type(exc).__name__}: {exc}"
                log.critical("%s failed (%s); restarting it in %g s", name, self.last_error[name], delay,
                             exc_info=True)  # fmt: skip
            else:
                return
            if loop.time() - began > self.max_delay_s:
                delay = self.first_delay_s  # it had been running fine: this is a new failure, not the same one
            await asyncio.sleep(delay)
            delay = min(self.max_delay_s, delay * 2)
