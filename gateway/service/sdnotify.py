"""Telling systemd how the gateway is: the sd_notify protocol, and the task that speaks it from the event loop.

The unit that `campus-edge install-service` writes is `Type=notify` with `WatchdogSec=`: systemd counts the
gateway started only once it says READY=1 (after its parts are running), shows its STATUS= line in
`systemctl status`, and restarts it when the WATCHDOG=1 pings stop. The pings are sent by a task of the gateway's
own event loop, so a loop that is stuck (a blocking call, a busy loop) stops them and gets the service restarted.

The protocol is a datagram of `KEY=value` lines to the AF_UNIX socket named in $NOTIFY_SOCKET (a name starting
with '@' is in the abstract namespace). It is small enough to own: the `sdnotify` package on PyPI has not been
maintained since 2017, and libsystemd's Python bindings need a C build against libsystemd on the Pi.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """A connection to systemd's notification socket; every call is a no-op when there is none."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._failed = False
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The socket and watchdog systemd gave this process ($NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID)."""
        env = os.environ if env is None else env
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        # WATCHDOG_PID names the process the watchdog is meant for; a child that inherited it must stay quiet.
        if env.get("WATCHDOG_USEC", "").isdigit() and (pid is None or pid == str(os.getpid())):
            usec = int(env["WATCHDOG_USEC"]) or None
        return cls(env.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        """Whether systemd listens."""
        return self._sock is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of the watchdog timeout, as systemd's documentation advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def notify(self, **fields: str) -> bool:
        """Send `KEY=value` lines in one datagram; False (logged once) when it could not be sent."""
        if self._sock is None or self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            self._sock.sendto(message, target)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notification to %s failed: %s", self.address, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


STATUS_EVERY_S = 10.0  # without a watchdog, a changed STATUS= line is sent this often


def _status_or_why(status: Callable[[], str]) -> str:
    """The status line, or what kept it from being read: the pings must not depend on the store being readable."""
    try:
        return status()
    except Exception as exc:  # noqa: BLE001 (a failing store is what the line should then say, not a stop)
        return f"status unavailable: {type(exc).__name__}: {exc}"


async def keep_systemd_informed(notifier: Notifier, started: asyncio.Event, status: Callable[[], str]) -> None:
    """READY=1 once `started` is set, then WATCHDOG=1 and changed STATUS= lines; STOPPING=1 when cancelled."""
    try:
        await started.wait()
        line = _status_or_why(status)
        notifier.notify(READY="1", STATUS=line)
        log.info("told systemd the gateway is ready (watchdog every %s s)", notifier.watchdog_interval_s)
        every = notifier.watchdog_interval_s or STATUS_EVERY_S  # with a watchdog, STATUS= rides on its pings
        while True:
            await asyncio.sleep(every)
            fields: dict[str, str] = {}
            if notifier.watchdog_usec is not None:
                fields["WATCHDOG"] = "1"
            now = _status_or_why(status)
            if now != line:
                fields["STATUS"] = line = now
            if fields:
                notifier.notify(**fields)
    except asyncio.CancelledError:
        notifier.notify(STOPPING="1", STATUS="stopping")
        raise
