"""systemd's notification protocol, spoken by a real gateway to a datagram socket bound here, as systemd's is."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service.sdnotify import Notifier, keep_systemd_informed
from simulators.broker import PrivateBroker
from tests.gateway_harness import config_text, make_config, running_gateway

WATCHDOG_USEC = 200_000  # pings every 0.1 s


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """An abstract-namespace datagram socket named in NOTIFY_SOCKET, with a watchdog asked for this process."""
    name = f"@campus-edge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


async def _next(sock: socket.socket) -> dict[str, str]:
    async with asyncio.timeout(10):
        data = await asyncio.get_running_loop().sock_recv(sock, 4096)
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def _queued(sock: socket.socket) -> list[bytes]:
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(4096))
    return out


async def test_sdnotify_ready_watchdog_then_stopping(
    tmp_path: Path, broker: PrivateBroker, notify_socket: socket.socket
) -> None:
    """READY=1 with a status line once started, WATCHDOG=1 again and again, STOPPING=1 when the gateway stops."""
    text = config_text(tmp_path / "state", broker.url, [], [])
    async with running_gateway(make_config(text)) as gw:
        ready = await _next(notify_socket)
        assert ready["READY"] == "1"
        assert "outbox 0 waiting" in ready["STATUS"]
        pings = 0
        statuses = [ready["STATUS"]]
        while pings < 3 or not statuses[-1].startswith("link up"):
            message = await _next(notify_socket)
            assert "READY" not in message
            pings += message.get("WATCHDOG") == "1"
            statuses += [message["STATUS"]] if "STATUS" in message else []
        assert gw.uplink.connected.is_set()
    stopping = _queued(notify_socket)[-1].decode().splitlines()
    assert stopping == ["STOPPING=1", "STATUS=stopping"]


async def test_sdnotify_no_ping_while_the_event_loop_is_blocked(
    tmp_path: Path, broker: PrivateBroker, notify_socket: socket.socket
) -> None:
    """The pings come from the event loop: while it is stuck none is sent, and they resume when it is free."""
    text = config_text(tmp_path / "state", broker.url, [], [])
    async with running_gateway(make_config(text)):
        assert (await _next(notify_socket))["READY"] == "1"
        assert (await _next(notify_socket)).get("WATCHDOG") == "1"
        _queued(notify_socket)
        time.sleep(5 * WATCHDOG_USEC / 1e6)  # noqa: ASYNC251 (the point: a stuck event loop)
        assert _queued(notify_socket) == []
        message = await _next(notify_socket)
        while "WATCHDOG" not in message:
            message = await _next(notify_socket)


def test_sdnotify_watchdog_meant_for_another_process_is_ignored() -> None:
    """A WATCHDOG_PID of another process (a parent's, inherited) asks nothing of this one."""
    other = Notifier.from_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    mine = Notifier.from_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"})
    assert other.watchdog_interval_s is None
    assert mine.watchdog_interval_s == 15.0
    assert not Notifier.from_environment({}).enabled
    for n in (other, mine):
        n.close()


async def test_sdnotify_pings_go_on_when_the_status_cannot_be_read(notify_socket: socket.socket) -> None:
    """A status that fails (a store that cannot be read) is reported as such; the watchdog pings go on."""

    def broken() -> str:
        raise OSError(5, "Input/output error")

    started = asyncio.Event()
    started.set()
    notifier = Notifier.from_environment()
    task = asyncio.create_task(keep_systemd_informed(notifier, started, broken))
    try:
        ready = await _next(notify_socket)
        assert ready == {"READY": "1", "STATUS": "status unavailable: OSError: [Errno 5] Input/output error"}
        assert await _next(notify_socket) == {"WATCHDOG": "1"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        notifier.close()
