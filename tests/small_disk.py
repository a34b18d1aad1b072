"""A really small file system for store tests: a tmpfs of a few megabytes, filled to the last byte."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.outbox import Outbox

FS_BYTES = 5 * 1024 * 1024


@contextlib.contextmanager
def small_filesystem(path: Path, size: int = FS_BYTES) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted at `path` for the block; skips the test where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip(f"mounting a small tmpfs needs root (the test runs as uid {os.geteuid()})")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def store_footprint(outbox: Outbox) -> int:
    """Bytes the store's files hold on the file system, read from outside the store."""
    total = 0
    for name in (outbox.path.name + s for s in ("", "-wal", "-shm", ".ballast", ".seq-reserved")):
        with contextlib.suppress(FileNotFoundError):
            total += (outbox.path.parent / name).stat().st_blocks * 512
    return total


def fill(path: Path) -> None:
    """Take every free byte of the file system, as a runaway log would."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
