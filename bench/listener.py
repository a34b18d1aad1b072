"""`python -m bench.listener`: the platform's side of a benchmark, as a process of its own.

Subscribes to one gateway's topics and keeps what a benchmark needs: every sequence number received (a bitmap),
arrival times on the machine-wide monotonic clock (comparable with the benchmark's own, for latencies), the age of
readings on arrival, and each event. On SIGTERM or SIGINT it writes a JSON summary and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.uplink.mqtt_client import Client


class Tally:
    """What arrived. `events_only`: telemetry is counted by message, not parsed (latency runs, where a platform
    consumer slower than the drain would put its own queue between the broker and the alarm)."""

    def __init__(self, events_only: bool = False) -> None:
        self.events_only = events_only
        self.seen = bytearray(1 << 20)
        self.readings = 0
        self.messages = 0
        self.duplicates = 0
        self.max_seq = 0
        self.first_mono = 0.0
        self.last_mono = 0.0
        self.per_second: dict[int, int] = {}
        self.payload_bytes: dict[int, int] = {}  # telemetry payload bytes per second: about the readings' own bytes
        self.age_ms: list[float] = []
        self.events: list[dict[str, Any]] = []
        # Arrivals after a silence of more than a second (a link back), and the first fresh reading (under a second
        # old) after stale ones (a backlog sent): when delivery resumed, and when it caught up.
        self.resumed_mono: list[float] = []
        self.caught_up_mono: list[float] = []
        self._stale = False
        self._last_seq_mono = 0.0

    def mark(self, seq: int) -> None:
        if seq >= len(self.seen):
            self.seen.extend(bytearray(max(seq + 1 - len(self.seen), len(self.seen))))
        if self.seen[seq]:
            self.duplicates += 1
        self.seen[seq] = 1
        self.max_seq = max(self.max_seq, seq)

    def take(self, topic: str, payload: bytes, mono: float, wall_ms: float) -> None:
        if self.events_only and topic.endswith("/telemetry"):
            self.messages += 1
            self.last_mono = mono
            return
        data = json.loads(payload)
        if not self.messages:
            self.first_mono = mono
        if "readings" in data or "seq" in data:
            if self._last_seq_mono and mono - self._last_seq_mono > 1.0:
                self.resumed_mono.append(mono)
            self._last_seq_mono = mono
        self.messages += 1
        self.last_mono = mono
        if "readings" in data:
            readings = data["readings"]
            for r in readings:
                self.mark(r["seq"])
            self.readings += len(readings)
            second = int(mono)
            self.per_second[second] = self.per_second.get(second, 0) + len(readings)
            self.payload_bytes[second] = self.payload_bytes.get(second, 0) + len(payload)
            # The oldest and the newest reading of each message: the spread of poll-to-platform ages.
            for r in (readings[0], readings[-1]):
                self.age_ms.append(wall_ms - datetime.fromisoformat(r["ts"]).timestamp() * 1000)
            newest = self.age_ms[-1]
            if newest >= 2000:
                self._stale = True
            elif self._stale and newest < 1000:
                self._stale = False
                self.caught_up_mono.append(mono)
        elif "seq" in data:
            self.mark(data["seq"])
            self.events.append(
                {
                    "topic": topic,
                    "mono": mono,
                    "seq": data["seq"],
                    "class": data.get("class"),
                    "device": data.get("device"),
                    "state": data.get("state"),
                    **({"detail": data.get("detail")} if data.get("class") == "gap" else {}),
                }
            )

    def summary(self) -> dict[str, Any]:
        received = [i for i in range(1, self.max_seq + 1) if self.seen[i]]
        return {
            "messages": self.messages,
            "readings": self.readings,
            "duplicates": self.duplicates,
            "max_seq": self.max_seq,
            "received_seqs": _ranges(received),
            "first_mono": self.first_mono,
            "last_mono": self.last_mono,
            "per_second": self.per_second,
            "payload_bytes": self.payload_bytes,
            "age_ms": self.age_ms,
            "events": self.events,
            "resumed_mono": self.resumed_mono,
            "caught_up_mono": self.caught_up_mono,
        }


def _ranges(seqs: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s in seqs:
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def expand(ranges: list[list[int]]) -> set[int]:
    """The seqs of a summary's `received_seqs`."""
    return {s for first, last in ranges for s in range(first, last + 1)}


async def listen(
    url: str, topic_filters: list[str], ready: Path, out: Path, events_only: bool = False, session: str | None = None
) -> None:
    host, _, port = url.removeprefix("mqtt://").partition(":")
    tally = Tally(events_only)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def receive() -> None:
        while True:
            try:
                # With a session id the broker keeps the subscription and queues for it while this reconnects, also
                # across a broker restart: nothing the gateway sends in between is missed.
                kept: dict[str, Any] = {"identifier": session, "clean_session": False} if session else {}
                async with Client(host, int(port), max_queued_incoming_messages=0, **kept) as client:
                    for topic_filter in topic_filters:
                        await client.subscribe(topic_filter, qos=1)
                    ready.touch()  # noqa: ASYNC240 - once, before anything arrives
                    async for msg in client.messages:
                        assert isinstance(msg.payload, bytes | bytearray)
                        tally.take(str(msg.topic), bytes(msg.payload), time.monotonic(), time.time() * 1000)
            except Exception:  # noqa: BLE001 - the broker may be stopped on purpose; keep listening
                await asyncio.sleep(0.05)

    task = asyncio.create_task(receive())
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    out.write_text(json.dumps(tally.summary()))  # noqa: ASYNC240 - at the very end


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.listener", description=__doc__)
    p.add_argument("--broker", required=True)
    p.add_argument("--topic", required=True, action="append", help="a topic filter (again for more)")
    p.add_argument("--ready", type=Path, required=True, help="touched once subscribed")
    p.add_argument("--out", type=Path, required=True, help="the JSON summary, written on SIGTERM")
    p.add_argument("--events-only", action="store_true", help="count telemetry messages without parsing them")
    p.add_argument("--session", help="a client id whose session the broker keeps (persistent subscription)")
    args = p.parse_args(argv)
    asyncio.run(listen(args.broker, args.topic, args.ready, args.out, args.events_only, args.session))
    return 0


if __name__ == "__main__":
    sys.exit(main())
