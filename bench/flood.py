"""A flood of commands on a gateway's command topics, from a process of its own: `python -m bench.flood`.

What an attacker on the broker (or a platform gone wrong) can send: mostly commands signed by a key the gateway
does not trust, some replays of one genuine command, some garbage. Published at `--rate` a second, QoS 0 (a flood
does not wait for acknowledgements), until killed. Prints how many it sent when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.base.keys import load_private
from gateway.safety.commands.envelope import sign


def payloads(key_file: Path, site: str, gateway: str, target: str) -> list[bytes]:
    """A mix: 80 % signed by a stranger, 15 % the same genuine command again, 5 % garbage."""
    stranger = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    args = {"kid": "platform-1", "issuer": "platform", "audience": f"{site}/{gateway}", "target": target,
            "action": "site.lockdown", "params": {"on": False}, "operator": "flood", "now": now,
            "ttl_s": 10.0}  # fmt: skip
    forged = [sign(stranger, seq=1_000_000 + i, **args) for i in range(80)]  # type: ignore[arg-type]
    genuine = sign(load_private(key_file), seq=1, **args)  # type: ignore[arg-type]
    garbage = [os.urandom(200) for _ in range(5)]
    return forged + [genuine] * 15 + garbage


async def flood(url: str, topic: str, messages: list[bytes], rate: float) -> int:
    host, port = url.removeprefix("mqtt://").split(":")
    sent = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with aiomqtt.Client(host, int(port), identifier="bench-flood", max_queued_outgoing_messages=10000) as c:
        began = time.monotonic()
        while not stop.is_set():
            due = began + sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
                continue
            await c.publish(topic, messages[sent % len(messages)], qos=0)
            sent += 1
    return sent


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.flood")
    p.add_argument("--broker", required=True)
    p.add_argument("--key", type=Path, required=True, help="the genuine key, for the replayed command")
    p.add_argument("--site", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--target", required=True, help="the gateway id (site.lockdown commands)")
    p.add_argument("--rate", type=float, default=1000.0)
    args = p.parse_args()
    messages = payloads(args.key, args.site, args.gateway, args.target)
    topic = f"campus/v1/{args.site}/{args.gateway}/cmd/{args.target}"
    sent = asyncio.run(flood(args.broker, topic, messages, args.rate))
    print(f"sent {sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
