"""The one durable write of the gateway's state files, tested by checking the calls it makes to the operating
system (os.open, os.write, os.fsync, os.close, os.replace, recorded on the way through), and by what is on disk
when one of them fails."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.base.statefile import save_json, write_durably
from gateway.safety.authority import Authority
from gateway.store.outbox import Outbox
from tests.test_alarms import Book
from tests.test_bollard_modes import Site

Call = tuple[str, ...]
FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY


class Calls:
    """The os calls of file descriptors and renames, in order, each naming the file it touched; `fail` makes the
    named call raise ENOSPC (or EIO for fsync) when it touches a path that `when` accepts, without making it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[Call] = []
        self.opened: list[tuple[str, int, int]] = []
        self.paths: dict[int, str] = {}
        self.failing: dict[str, Callable[[str], bool]] = {}
        real_open, real_write, real_fsync, real_close, real_replace = os.open, os.write, os.fsync, os.close, os.replace

        def fake_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
            name = os.fspath(path)
            self._maybe_fail("open", name, errno.ENOSPC)
            fd = real_open(path, flags, mode, *args, **kwargs)
            self.paths[fd] = name
            self.opened.append((name, flags, mode))
            self.log.append(("open", name))
            return fd

        def fake_write(fd: int, data: Any) -> int:
            self._maybe_fail("write", self.paths.get(fd, ""), errno.ENOSPC)
            self.log.append(("write", self.paths.get(fd, "")))
            return real_write(fd, data)

        def fake_fsync(fd: Any) -> None:
            self._maybe_fail("fsync", self.paths.get(fd, ""), errno.EIO)
            self.log.append(("fsync", self.paths.get(fd, "")))
            real_fsync(fd)

        def fake_close(fd: int) -> None:
            self.log.append(("close", self.paths.pop(fd, "")))
            real_close(fd)

        def fake_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self._maybe_fail("replace", os.fspath(dst), errno.ENOSPC)
            self.log.append(("replace", os.fspath(src), os.fspath(dst)))
            real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "write", fake_write)
        monkeypatch.setattr(os, "fsync", fake_fsync)
        monkeypatch.setattr(os, "close", fake_close)
        monkeypatch.setattr(os, "replace", fake_replace)

    def fail(self, call: str, when: Callable[[str], bool]) -> None:
        self.failing[call] = when

    def _maybe_fail(self, call: str, path: str, code: int) -> None:
        if call in self.failing and self.failing[call](path):
            raise OSError(code, os.strerror(code), path)

    def of(self, target: Path) -> list[Call]:
        """The calls that wrote `target`: those on it, its temporary file and its directory."""
        names = {str(target), f"{target}.tmp", str(target.parent)}
        return [c for c in self.log if names & set(c[1:])]


def durable(target: Path, writes: int = 1) -> list[Call]:
    """The calls of one durable write of `target`, in the order that survives a power cut."""
    tmp, folder = f"{target}.tmp", str(target.parent)
    return [("open", tmp), *[("write", tmp)] * writes, ("fsync", tmp), ("close", tmp), ("replace", tmp, str(target)),
            ("open", folder), ("fsync", folder), ("close", folder)]  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(monkeypatch)


def test_statefile_writes_fsyncs_renames_then_fsyncs_the_directory(tmp_path: Path, calls: Calls) -> None:
    """Write the temporary file, fsync it, rename it over the target, fsync the directory: in that order."""
    target = tmp_path / "modes.json"
    target.write_bytes(b"old")
    write_durably(target, b"new")
    assert calls.log == durable(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modes.json"]


def test_statefile_the_temporary_file_is_created_private(tmp_path: Path, calls: Calls) -> None:
    """The temporary file is created new (O_EXCL) and 0600, whatever the umask allows; a caller may ask for more."""
    old_umask = os.umask(0o022)
    try:
        write_durably(tmp_path / "alarms.json", b"[]")
        write_durably(tmp_path / "shared.json", b"{}", mode=0o640)
    finally:
        os.umask(old_umask)
    opened = [(Path(name).name, flags & FLAGS, mode) for name, flags, mode in calls.opened if name.endswith(".tmp")]
    assert opened == [("alarms.json.tmp", FLAGS, 0o600), ("shared.json.tmp", FLAGS, 0o640)]
    assert stat.S_IMODE((tmp_path / "alarms.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("call", ["open", "write", "fsync"])
def test_statefile_a_failure_before_the_rename_keeps_the_old_file(tmp_path: Path, calls: Calls, call: str) -> None:
    """A temporary file that cannot be created, written or synced: OSError, the old file whole, no temporary file."""
    target = tmp_path / "fire-hold.json"
    target.write_bytes(b'["lane-west"]')
    calls.fail(call, lambda path: path.endswith(".tmp"))
    with pytest.raises(OSError, match=r"\[Errno \d+\] "):
        write_durably(target, b"[]")
    assert target.read_bytes() == b'["lane-west"]'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fire-hold.json"]
    assert ("replace", f"{target}.tmp", str(target)) not in calls.log


def test_statefile_a_crash_at_the_rename_keeps_the_old_file(tmp_path: Path, calls: Calls) -> None:
    """A rename that fails (as a power cut before it would): the old file whole, no temporary file left."""
    target = tmp_path / "alarms.json"
    target.write_bytes(b"old")
    calls.fail("replace", lambda path: path == str(target))
    with pytest.raises(OSError, match=r"No space left on device"):
        write_durably(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alarms.json"]


def test_statefile_a_temporary_file_left_by_a_power_cut_does_not_stop_the_next_write(tmp_path: Path) -> None:
    """A power cut during a write leaves the temporary file; the next write replaces it rather than failing."""
    target = tmp_path / "modes.json"
    (tmp_path / "modes.json.tmp").write_bytes(b'{"lockd')
    write_durably(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modes.json"]


def test_statefile_save_json_logs_a_failure_and_keeps_the_old_file(
    tmp_path: Path, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    """save_json reports a write that failed (False, and the log names the file and what it holds)."""
    target = tmp_path / "modes.json"
    target.write_text('{"lockdown":null}')
    calls.fail("fsync", lambda path: path.endswith(".tmp"))
    with caplog.at_level(logging.ERROR, logger="gateway.base.statefile"):
        assert save_json(target, {"lockdown": "guard"}, "the modes") is False
    assert caplog.messages == [f"{target}: cannot save the modes: [Errno 5] Input/output error: '{target}.tmp'"]
    assert target.read_text() == '{"lockdown":null}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modes.json"]


def test_statefile_the_alarm_book_saves_through_the_durable_write(tmp_path: Path, calls: Calls) -> None:
    """An alarm raised: alarms.json is written by the durable write, temporary file to directory fsync."""
    b = Book(tmp_path)
    calls.log.clear()
    b.event("fault", "raised", "facp-1", "fault")
    b.close()
    target = tmp_path / "alarms.json"
    assert calls.of(target) == durable(target)
    assert "facp-1.fault" in target.read_text()


def test_statefile_the_modes_file_saves_through_the_durable_write(tmp_path: Path, calls: Calls) -> None:
    """A lockdown declared: modes.json is written by the durable write, temporary file to directory fsync."""
    site = Site(tmp_path)
    calls.log.clear()
    site.service.set_lockdown(True, Authority.GUARD)
    target = tmp_path / "modes.json"
    written = calls.of(target)
    saves = len(written) // len(durable(target))  # the lockdown, and each lane's intent as it changes
    assert saves >= 1
    assert written == durable(target) * saves
    assert '"lockdown":"guard"' in target.read_text()
    site.service.close()
    site.outbox.close()


def test_statefile_the_outbox_seq_reservation_saves_through_the_durable_write(tmp_path: Path, calls: Calls) -> None:
    """A new outbox's seq reservation is written by the durable write, created private."""
    box = Outbox(tmp_path / "outbox.db")
    box.close()
    target = tmp_path / "outbox.db.seq-reserved"
    assert calls.of(target) == durable(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
