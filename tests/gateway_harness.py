"""Running a real gateway against simulators and a private broker inside a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gateway.base.clock import Clock
from gateway.config import Config, parse_config
from gateway.service.app import Gateway


def config_text(
    state_dir: Path,
    broker_url: str,
    buses: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    inputs: list[dict[str, Any]] | None = None,
    mqtt_extra: str = "",
) -> str:
    """A site configuration in TOML, as an installer would write it."""

    def table(header: str, values: dict[str, Any]) -> str:
        lines = [f"[[{header}]]"]
        for k, v in values.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {str(v).lower()}")
            elif isinstance(v, int | float):
                lines.append(f"{k} = {v}")
            else:
                lines.append(f'{k} = "{v}"')
        return "\n".join(lines) + "\n"

    parts = [
        '[site]\nid = "test-school"\n',
        f'[gateway]\nid = "gw-1"\nstate_dir = "{state_dir}"\n',
        f'[mqtt]\nurls = ["{broker_url}"]\nallow_plaintext = true\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
        + mqtt_extra,
    ]
    parts += [table("buses", b) for b in buses]
    parts += [table("devices", d) for d in devices]
    if inputs:
        parts.append('[gpio]\npin_factory = "mock"\n')
        parts += [table("gpio.inputs", i) for i in inputs]
    return "\n".join(parts)


def make_config(text: str) -> Config:
    """Validate as the gateway would at start."""
    return parse_config(text, "test.toml")


@contextlib.asynccontextmanager
async def running_gateway(
    cfg: Config, pin_factory: Any = None, clock: Clock | None = None, report_check_s: float = 30.0
) -> AsyncIterator[Gateway]:
    """A gateway running in the background for the duration of the block."""
    gw = Gateway(cfg, pin_factory=pin_factory, clock=clock or Clock(assume_synced=True))
    gw.report_check_s = report_check_s
    task = asyncio.create_task(gw.run(), name="gateway")
    try:
        async with asyncio.timeout(10):
            await gw.started.wait()
        yield gw
    finally:
        task.cancel()
        async with asyncio.timeout(15):
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Signal:
    """Set by a listener (outbox commit or delete, a poll, a message); awaited until a condition holds."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self, *_args: object) -> None:
        self.event.set()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Return once `predicate()` is true, re-checking whenever the signal fires."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.event.clear()
                await self.event.wait()


def watch_gateway(gw: Gateway) -> Signal:
    """A signal fired on every outbox commit and delete and every poll of the gateway."""
    sig = Signal()
    gw.outbox.on_commit(sig)
    gw.outbox.on_delete(sig)
    for poller in gw.pollers.values():
        poller.on_poll.append(sig)
    gw.uplink.on_link_change.append(sig)
    return sig
