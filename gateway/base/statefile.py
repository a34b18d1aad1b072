"""Small state files in state_dir (fire holds, modes, alarms, event states, the outbox's seq reservation): written
whole or not at all, through `write_durably` alone.

The gateway runs under umask 077 (`campus-edge run`; the unit's UMask=0077), and creates its state files 0600
besides, so what it writes here is its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a power cut leaves the old file or the new one, never half of one: a
    temporary file beside it (created `mode`, less the umask; 0600 because what the gateway keeps is its own) is
    written and fsynced, renamed over `path`, and the directory fsynced so that the rename itself is on disk.

    Raises OSError. Until the rename the old file is whole, and a failure removes the temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a power cut during an earlier write; O_EXCL would refuse every write after it
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_json(path: Path, data: Any, what: str) -> bool:
    """Write `data` as JSON to `path` atomically and durably (`write_durably`). A failure is logged with `what` and
    returns False; the caller carries on (what it saves is also in the outbox or in memory)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        write_durably(path, text.encode("utf-8"))
    except OSError as exc:
        log.error("%s: cannot save %s: %s", path, what, exc)
        return False
    return True


def make_state_dir(path: Path) -> None:
    """Create `path` and its missing parents 0711, whatever the umask: the guards' control group reaches the control
    socket inside by its path, and can list nothing. A folder that exists keeps its mode (systemd's
    StateDirectoryMode=, or the installer's)."""
    if path.is_dir():
        return
    make_state_dir(path.parent)
    path.mkdir(mode=0o711, exist_ok=True)
    path.chmod(0o711)
