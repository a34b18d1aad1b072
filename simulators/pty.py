"""Pseudo-terminal serial pairs from socat, with stable link paths, standing in for an RS-485 line."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path


class PtyPair:
    """Two linked pseudo-terminals: the gateway opens `gateway_end`, the simulator `device_end`.

    socat copies bytes between them, as a transparent RS-485 adapter pair would. The links are removed when the
    pair closes.
    """

    def __init__(self, gateway_end: Path, device_end: Path) -> None:
        self.gateway_end = gateway_end
        self.device_end = device_end
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> PtyPair:
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError("socat is not installed (Debian package 'socat')")
        for p in (self.gateway_end, self.device_end):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.unlink(missing_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            socat,
            f"pty,raw,echo=0,link={self.gateway_end}",
            f"pty,raw,echo=0,link={self.device_end}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(5.0):
            while not (self.gateway_end.exists() and self.device_end.exists()):
                if self._proc.returncode is not None:
                    err = await self._proc.stderr.read() if self._proc.stderr else b""
                    raise RuntimeError(f"socat exited: {err.decode(errors='replace').strip()}")
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(5.0):
                    await self._proc.wait()
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        for p in (self.gateway_end, self.device_end):
            if p.is_symlink():
                os.unlink(p)
