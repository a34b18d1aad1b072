"""Small state files in state_dir (fire holds, modes, alarms, event states): written whole or not at all.

The gateway runs under umask 077 (`campus-edge run`; the unit's UMask=0077), so what it writes here is its own.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def save_json(path: Path, data: Any, what: str) -> bool:
    """Write `data` as JSON to `path` atomically and durably (temporary file, fsync, rename): a power cut leaves
    the old file or the new one, never half of one. A failure is logged with `what` and returns False; the caller
    carries on (what it saves is also in the outbox or in memory)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
