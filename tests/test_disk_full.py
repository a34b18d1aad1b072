"""A really full file system: the store stays inside its share, keeps room to release space, and resumes by itself.

The state directory is a 5 MB tmpfs, as on a small SD card partition that fills up. These tests mount it (root)
and skip with the reason where the machine does not allow that.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Any

from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_TELEMETRY, Entry, Limits, Outbox
from simulators.broker import PrivateBroker
from simulators.devices import AnalogModuleSim
from tests.conftest import open_sim_bus
from tests.gateway_harness import config_text, make_config, running_gateway, watch_gateway
from tests.small_disk import FS_BYTES, fill, small_filesystem, store_footprint
from tests.test_store_and_forward import watching

ANALOG = {"id": "ai-1", "bus": "tcp-1", "unit": 1, "profile": "analog_module", "poll_interval_s": 0.01}


def test_outbox_footprint_stays_inside_the_share_of_a_small_disk(tmp_path: Path) -> None:
    """Database, WAL, shm and ballast together never pass max_disk_share of the file system."""
    with small_filesystem(tmp_path / "small") as small:
        outbox = Outbox(small / "outbox.db", Limits(max_disk_share=0.5))
        peak = 0
        body = '{"d":"ai-1","p":"ch3","v":12.5,"q":"good","ts":"2026-12-04T10:00:00.000Z"}'
        for i in range(30_000):
            outbox.put([Entry(PRIORITY_TELEMETRY, None, body)])
            if i % 10 == 0:
                peak = max(peak, store_footprint(outbox))
        assert outbox.health.evicted_rows > 0, "the bound was reached"
        assert peak <= FS_BYTES * 0.5, f"the store took {peak} bytes of {FS_BYTES}"
        assert outbox.health.store_errors == 0
        outbox.close()


def test_outbox_on_a_full_disk_still_deletes_and_evicts(tmp_path: Path) -> None:
    """With every byte taken by another file, delivered rows can be deleted and telemetry evicted."""
    with small_filesystem(tmp_path / "small") as small:
        outbox = Outbox(small / "outbox.db", Limits(max_disk_share=0.5))
        body = "x" * 200
        seqs = [s for _ in range(300) for s in outbox.put([Entry(PRIORITY_TELEMETRY, None, body)] * 5)]
        alarm = outbox.put([Entry(PRIORITY_ALARM, "campus/v1/s/g/event/fire", '{"state":"raised"}')])[0]
        fill(small / "filler")
        assert shutil.disk_usage(small).free < 4096
        errors = outbox.health.store_errors
        delivered = outbox.fetch(PRIORITY_TELEMETRY, 0, 200)
        outbox.delete_sent(delivered)
        assert outbox.health.store_errors == errors, outbox.health.last_error
        assert outbox.fetch(PRIORITY_TELEMETRY, 0, 1)[0].seq == delivered[-1].seq + 1
        # The disk is still full: an alarm is still taken, telemetry is evicted to make room for it.
        second = outbox.put([Entry(PRIORITY_ALARM, "campus/v1/s/g/event/fire", '{"state":"cleared"}')])[0]
        assert [r.seq for r in outbox.fetch(PRIORITY_ALARM, 0, 10)] == [alarm, second]
        kept = {r.seq for r in outbox.fetch(PRIORITY_TELEMETRY, 0, 10_000)}
        evicted = {s for ev in outbox.take_evictions() for s in range(ev.first_seq, ev.last_seq + 1)}
        delivered_seqs = {r.seq for r in delivered}
        assert set(seqs) == kept | evicted | delivered_seqs, "every seq is kept, delivered or declared"
        (small / "filler").unlink()
        # Space is back: the ballast comes back only inside the bound, and telemetry is taken again.
        outbox.put([Entry(PRIORITY_TELEMETRY, None, body)])
        assert store_footprint(outbox) <= FS_BYTES * 0.5
        assert outbox.integrity_ok()
        outbox.close()


async def test_full_disk_then_space_and_broker_back_resumes_by_itself(tmp_path: Path, subscriber_factory: Any) -> None:
    """The outside check's case: 1,800 readings/s, broker down, disk filled and freed: delivery resumes, no restart,
    and every committed seq is delivered or declared."""
    with small_filesystem(tmp_path / "small") as small:
        own = PrivateBroker(tmp_path / "broker")
        own.start()
        try:
            module = AnalogModuleSim(churn=True)
            async with contextlib.AsyncExitStack() as stack:
                bus, endpoint = await open_sim_bus("tcp", {1: module}, tmp_path, stack)
                await bus.__aexit__(None, None, None)
                text = config_text(small / "state", own.url, [{"id": "tcp-1", **endpoint}], [ANALOG])
                async with running_gateway(make_config(text)) as gw:
                    signal = watch_gateway(gw)
                    async with watching(own.url, ack=False, signal=signal) as watcher:
                        await signal.until(lambda: "gw-1" in watcher.ledgers and gw.outbox.depth() == 0)
                        own.stop()
                        peak = 0

                        def grown() -> bool:
                            nonlocal peak
                            peak = max(peak, store_footprint(gw.outbox))
                            return gw.outbox.health.evicted_rows > 0

                        await signal.until(grown, timeout_s=60)
                        assert peak <= FS_BYTES * 0.5, f"the store took {peak} bytes of {FS_BYTES}"
                        fill(small / "filler")
                        evicted = gw.outbox.health.evicted_rows
                        # The store goes on in the room it holds: it evicts, deletes and reuses its own pages.
                        await signal.until(lambda: gw.outbox.health.evicted_rows > evicted + 2000, timeout_s=30)
                        (small / "filler").unlink()
                        own.start()
                        resumed = asyncio.get_running_loop().time()
                        await signal.until(lambda: gw.uplink.published_messages > 0 and gw.outbox.depth() < 50, 60.0)
                        took = asyncio.get_running_loop().time() - resumed
                        module.churn = False
                        await signal.until(
                            lambda: (
                                gw.outbox.depth() == 0
                                and watcher.ledgers["gw-1"].max_seq >= gw.outbox.last_seq() - 1
                                and not watcher.ledgers["gw-1"].outstanding()
                            ),
                            timeout_s=60,
                        )
                        ledger = watcher.ledgers["gw-1"]
                        assert ledger.mark == ledger.max_seq, "every committed seq delivered or declared"
                        assert took < 20
                        assert gw.outbox.integrity_ok()
        finally:
            own.stop()
