"""Guards signing in to the gate-house panel, from a process of its own: `python -m bench.signins`.

Each sign-in makes the gateway hash a PIN (scrypt, tens of milliseconds); this is the load that shows whether that
cost lands on the event loop that carries fire alarms. Right PINs, one after another at `--rate` a second, until
killed; prints how many were let in when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
import time

import aiohttp


async def sign_in_loop(url: str, ca_file: str, guard: str, pin: str, rate: float) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    context = ssl.create_default_context(cafile=ca_file)
    let_in = sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        began = time.monotonic()
        while not stop.is_set():
            delay = began + sent / rate - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
                continue
            sent += 1
            try:
                async with http.post(f"{url}/api/login", json={"guard": guard, "pin": pin}) as r:
                    let_in += r.status == 200
            except aiohttp.ClientError as exc:
                print(f"sign-in {sent}: {exc}", file=sys.stderr, flush=True)
            http.cookie_jar.clear()
    return let_in


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.signins")
    p.add_argument("--url", required=True, help="the panel, https://127.0.0.1:PORT")
    p.add_argument("--ca", required=True, help="the CA that signed the panel's certificate")
    p.add_argument("--guard", required=True)
    p.add_argument("--pin", required=True)
    p.add_argument("--rate", type=float, default=5.0)
    args = p.parse_args()
    let_in = asyncio.run(sign_in_loop(args.url, args.ca, args.guard, args.pin, args.rate))
    print(f"signed in {let_in}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
