"""The supervisor restarts a failing part, and never swallows the cancellation that stops the gateway."""

from __future__ import annotations

import asyncio

import pytest

from gateway.base.supervise import Supervisor


async def test_supervisor_restarts_a_part_that_fails() -> None:
    """Two failures, then a clean run: restarted twice, errors named, the third run returns."""
    sup = Supervisor(first_delay_s=0.01, max_delay_s=0.05)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise OSError(5, "Input/output error")

    await asyncio.wait_for(sup.keep("uplink", flaky), 5)
    assert runs == [0, 1, 2]
    assert sup.restarts == {"uplink": 2}
    assert sup.last_error["uplink"] == "OSError: [Errno 5] Input/output error"


async def test_supervisor_lets_cancellation_through() -> None:
    """Cancelling the supervised part's task stops it; it is not restarted."""
    sup = Supervisor(first_delay_s=0.01)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(sup.keep("poller", forever))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sup.restarts == {}


async def test_supervisor_restart_counts_name_every_part() -> None:
    """A part that never failed counts 0 beside one restarted twice, in the order they started."""
    sup = Supervisor(first_delay_s=0.01, max_delay_s=0.05)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise OSError(5, "Input/output error")

    async def fine() -> None:
        return

    await asyncio.wait_for(sup.keep("health", fine), 5)
    await asyncio.wait_for(sup.keep("poll[line]", flaky), 5)
    assert sup.restart_counts() == {"health": 0, "poll[line]": 2}
