"""Small state files in state_dir (fire holds, modes, alarms, event states, the outbox's seq reservation): written
whole or not at all, through `write_durably` alone.

The gateway runs under umask 077 (`campus-edge run`; the unit's UMask=0077), and creates its state files 0600
besides, so what it writes here is its own.

A JSON state file carries the version of its format, so that an upgrade keeps it: `{"format": "campus-edge/state",
"version": 1, "data": ...}`. A file without the wrapper is version 1 (as 0.1.0 wrote them). A newer gateway reads an
older version (and migrates it, once a version 2 exists); an older one refuses a newer file and leaves it as it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from gateway.base import strict_json
from gateway.base.errors import NewerStoreError

log = logging.getLogger(__name__)

STATE_FORMAT = "campus-edge/state"
STATE_VERSION = 1  # what save_json writes, and the newest version load_json reads


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
    """Write `data` as JSON to `path`, in the wrapper of the current version, atomically and durably
    (`write_durably`). A failure is logged with `what` and returns False; the caller carries on (what it saves is
    also in the outbox or in memory)."""
    wrapped = {"format": STATE_FORMAT, "version": STATE_VERSION, "data": data}
    text = json.dumps(wrapped, ensure_ascii=False, separators=(",", ":"))
    try:
        write_durably(path, text.encode("utf-8"))
    except OSError as exc:
        log.error("%s: cannot save %s: %s", path, what, exc)
        return False
    return True


def load_json(path: Path) -> Any:
    """The data of a state file that `save_json` wrote, or that 0.1.0 wrote without a version (version 1).

    Raises:
        FileNotFoundError, OSError: the file cannot be read.
        ValueError: it is not JSON, has a key twice (strict_json), or its wrapper is damaged.
        NewerStoreError: a newer gateway wrote it; the caller must not start on it, nor replace it.
    """
    data = strict_json.loads(path.read_text(encoding="utf-8"), path.name)
    if not (isinstance(data, dict) and data.get("format") == STATE_FORMAT):
        return data  # version 1 as 0.1.0 wrote it: no wrapper (no 0.1.0 file has this "format" at its top)
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or "data" not in data:
        raise ValueError(f"{path.name}: expected a version and data in the {STATE_FORMAT} wrapper")
    if version > STATE_VERSION:
        raise NewerStoreError(str(path), version, STATE_VERSION)
    return data["data"]  # version 1: nothing to migrate yet


def make_state_dir(path: Path) -> None:
    """Create `path` and its missing parents 0711, whatever the umask: the guards' control group reaches the control
    socket inside by its path, and can list nothing. A folder that exists keeps its mode (systemd's
    StateDirectoryMode=, or the installer's)."""
    if path.is_dir():
        return
    make_state_dir(path.parent)
    path.mkdir(mode=0o711, exist_ok=True)
    path.chmod(0o711)
