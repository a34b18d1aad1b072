"""Small state files in state_dir (fire holds, modes, alarms, event states): written whole or not at all."""

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
