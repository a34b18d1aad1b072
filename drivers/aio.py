"""asyncio helpers for Python 3.11's rough edges."""

from __future__ import annotations

import asyncio


def reraise_if_cancelling(exc: BaseException | None = None) -> None:
    """Raise CancelledError if the current task has been asked to stop.

    On Python 3.11 `asyncio.wait_for` (which pymodbus and aiomqtt await on) returns normally when its future
    completes in the same loop cycle as a cancellation, and aiomqtt's `Client.__aexit__` can raise MqttError while
    a CancelledError unwinds through it. Either way the cancellation would be lost and a stopping task would run
    on, so loops that call those libraries check after each call.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc
