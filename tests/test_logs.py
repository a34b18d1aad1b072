"""The log under systemd (journald: syslog priorities, no timestamps of our own) and on a terminal (as before)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from gateway.cli.logs import JOURNAL_FORMAT, JournalFormatter, priority, under_journal

ROOT = Path(__file__).resolve().parent.parent
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stream_id(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _fails() -> None:
    raise ValueError("bad reply")


async def _run_gateway(tmp_path: Path, journal_stream: str | None) -> list[str]:
    """`campus-edge run` with its stderr on a stream socket, as systemd connects a service to journald, against a
    broker that is not there: its start (info) and the link down (warning), then SIGTERM. The lines of its log.
    "STDERR" in `journal_stream` stands for the device and inode of the gateway's end of the socket."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[site]\nid = "test-school"\n[gateway]\nid = "gw-1"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nurls = ["mqtt://127.0.0.1:{_closed_port()}"]\nallow_plaintext = true\nreconnect_min_s = 0.1\n'
        "reconnect_max_s = 0.5\n"
    )
    ours, theirs = socket.socketpair()
    st = os.fstat(theirs.fileno())
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream.replace("STDERR", f"{st.st_dev}:{st.st_ino}")
    with theirs:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=theirs.fileno(), env=env,
            cwd=ROOT,
        )  # fmt: skip
    reader, writer = await asyncio.open_connection(sock=ours)
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not lines or "gateway.uplink.link: link to" not in lines[-1]:
                line = await reader.readline()
                assert line, f"the gateway's log ended: {lines}"
                lines.append(line.decode().rstrip("\n"))
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rest = await reader.read()
            assert await proc.wait() == 0
    finally:
        writer.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return lines + rest.decode().splitlines()


@pytest.mark.slow
async def test_logs_under_journald_carry_priorities_and_no_timestamps(tmp_path: Path) -> None:
    """JOURNAL_STREAM naming the gateway's stderr: `<6>` for its start, `<4>` for the link down, no time stamps."""
    lines = await _run_gateway(tmp_path, "STDERR")
    assert lines[0].startswith("<6>gateway.service.app: campus-edge ")
    assert any(re.fullmatch(r"<4>gateway\.uplink\.link: link to mqtt://127\.0\.0\.1:\d+ down: .+", x) for x in lines)
    assert all(re.match(r"<[2-7]>[\w.]+: ", x) for x in lines), lines
    assert not any(re.search(STAMP, x) for x in lines), lines


@pytest.mark.slow
@pytest.mark.parametrize("journal_stream", [None, "1:2"], ids=["no-journal", "inherited-elsewhere"])
async def test_logs_on_a_terminal_as_before(tmp_path: Path, journal_stream: str | None) -> None:
    """No JOURNAL_STREAM, or one naming another stream (inherited, stderr since redirected): time, level, logger."""
    lines = await _run_gateway(tmp_path, journal_stream)
    assert re.fullmatch(STAMP + r" INFO gateway\.service\.app: campus-edge .+", lines[0])
    assert any(re.fullmatch(STAMP + r" WARNING gateway\.uplink\.link: link to .+ down: .+", x) for x in lines)
    assert not any(x.startswith("<") for x in lines)


def test_logs_priority_of_each_level() -> None:
    """Python's levels as sd-daemon's priorities; a level between two takes the lower one's."""
    levels = [logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG, 25, 1]
    assert [priority(level) for level in levels] == [2, 3, 4, 6, 7, 6, 7]


def test_logs_journal_prefixes_every_line_of_a_record() -> None:
    """A traceback's lines are entries of their own in the journal: each keeps its record's priority."""
    try:
        _fails()
    except ValueError:
        record = logging.LogRecord("gateway.x", logging.ERROR, __file__, 1, "poll failed", None, sys.exc_info())
    lines = JournalFormatter(JOURNAL_FORMAT).format(record).splitlines()
    assert lines[0] == "<3>gateway.x: poll failed"
    assert lines[-1] == "<3>ValueError: bad reply"
    assert all(x.startswith("<3>") for x in lines)


def test_logs_under_journal_needs_a_stream_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the stream whose device and inode JOURNAL_STREAM names is the journal; a malformed value names none."""
    path = tmp_path / "stream"
    path.touch()
    with path.open("w") as stream:
        monkeypatch.setenv("JOURNAL_STREAM", _stream_id(path))
        assert under_journal(stream)
        assert not under_journal(io.StringIO())
        for said in ("", "12", "a:b", f"{_stream_id(path)}:1"):
            monkeypatch.setenv("JOURNAL_STREAM", said)
            assert not under_journal(stream), said
