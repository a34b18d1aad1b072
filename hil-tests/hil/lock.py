"""One run at a time on a bench: an flock on the rig's lock file, held for the whole test session.

Two runs on one bench would fight over the same serial adapters and pins and fail in ways that look like bugs.
The holder writes who it is into the file, so the run that finds the bench busy can say who has it. flock is
released by the kernel when the holder dies, so a crashed run never leaves the bench locked; the file itself stays
(removing it would let a third run lock a new file while the second still waits on the old one).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import getpass
import os
import socket
import sys
from pathlib import Path
from types import TracebackType


class BenchBusy(Exception):
    """Another run holds the bench."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path}: the bench is in use by {holder or 'a run that did not say who it is'}")


def holder_line(rig: str) -> str:
    """Who holds the lock: process, user, host, since when, which rig and which command."""
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    command = " ".join(sys.argv)
    return f"pid {os.getpid()} ({getpass.getuser()}@{socket.gethostname()}) since {since}, rig {rig}: {command}"


class BenchLock:
    """`with BenchLock(path, rig):` holds the bench, or raises `BenchBusy` at once."""

    def __init__(self, path: Path, rig: str) -> None:
        self.path = path
        self.rig = rig
        self._fd: int | None = None

    def __enter__(self) -> BenchLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            writable = True
        except PermissionError:
            # Made by another user of the bench: locking needs no write access, telling who we are does.
            fd = os.open(self.path, os.O_RDONLY)
            writable = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            os.close(fd)
            raise BenchBusy(self.path, holder) from None
        if writable:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o666)  # the next user of the bench may be someone else
            os.ftruncate(fd, 0)
            os.pwrite(fd, (holder_line(self.rig) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # nobody holds it now
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
