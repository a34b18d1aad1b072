"""The recorder when the store refuses writes: alarms and events kept in memory, readings counted, nothing silent."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from drivers.profile import Quality
from gateway.base.clock import Clock
from gateway.base.contract import Topics
from gateway.base.errors import StoreError
from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY, Entry, Limits, Outbox
from gateway.store.recorder import Recorder
from gateway.store.records import Event, Reading, Stamp
from gateway.store.stateboard import StateBoard

AT = Stamp(1_790_000_000_000, 1.0, True)


def fire() -> Event:
    # Larger than the pages the store has free, so the write needs the file to grow.
    return Event("fire", "alarm", "raised", "facp-1", "zone_3", True, Quality.GOOD, AT, {"text": "x" * 50_000})


def door() -> Event:
    return Event("door", "info", "raised", "door-east", "open", True, Quality.GOOD, AT)


def readings(n: int) -> list[Reading]:
    return [Reading("smk-1", "obscuration", 0.1 * i + 0.123456789, Quality.GOOD, AT) for i in range(n)]


def recorder(tmp_path: Path) -> tuple[Recorder, Outbox]:
    topics = Topics("test-school", "gw-1")
    box = Outbox(tmp_path / "o.db", Limits(max_bytes=10**9, max_disk_share=1.0))
    return Recorder(box, topics, StateBoard(topics), Clock(assume_synced=True)), box


def test_recorder_keeps_alarm_and_events_while_the_store_refuses(tmp_path: Path) -> None:
    """A full store loses neither the fire nor the door event; readings it could not take are counted, then told."""
    rec, box = recorder(tmp_path)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")  # nothing to evict: every write fails
    rec.record(readings(200), [fire(), door()])
    assert [json.loads(e.body)["class"] for e in rec.pending_alarms] == ["fire"]
    assert [json.loads(e.body)["class"] for e in rec.pending_events] == ["door"]
    assert rec.dropped_readings == 200
    assert rec.store_failing
    # Only the small store-health event fitted in the pages the store still had.
    assert [(json.loads(r.body)["class"], json.loads(r.body)["point"]) for r in box.fetch(PRIORITY_EVENT, 0, 9)] == [
        ("store", "errors")
    ]

    box._db.execute("PRAGMA max_page_count = 1073741823")  # space again
    rec.record(readings(1), [])
    assert rec.pending_alarms == []
    assert rec.pending_events == []
    alarms = box.fetch(PRIORITY_ALARM, 0, 10)
    events = [json.loads(r.body) for r in box.fetch(PRIORITY_EVENT, 0, 10)]
    assert [json.loads(r.body)["class"] for r in alarms] == ["fire"]
    assert [(e["class"], e["point"], e["state"]) for e in events] == [
        ("store", "errors", "raised"),
        ("door", "open", "raised"),
        ("store", "errors", "cleared"),
    ]
    assert alarms[0].seq < box.fetch(PRIORITY_EVENT, 0, 10)[1].seq  # the held alarm is committed first
    assert events[2]["detail"] == {"dropped_readings": 200, "dropped_events": 0}


def test_recorder_bounds_the_events_it_holds(tmp_path: Path) -> None:
    """Beyond the bound the oldest held events go, and are counted: memory stays bounded on a dead disk."""
    rec, box = recorder(tmp_path)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(3):
        rec.record([], [door()] * 4000)
    assert len(rec.pending_events) == 10_000
    assert rec.dropped_events == 2_000


def test_recorder_declares_an_eviction_even_when_the_store_first_refuses_the_gap(tmp_path: Path) -> None:
    """Evicted seqs taken from the outbox are declared once the store takes writes again, never forgotten."""
    topics = Topics("test-school", "gw-1")
    box = Outbox(tmp_path / "o.db", Limits(max_bytes=1024 * 1024, max_disk_share=1.0))
    rec = Recorder(box, topics, StateBoard(topics), Clock(assume_synced=True))
    while not box.health.evictions:
        box.put([Entry(PRIORITY_TELEMETRY, None, "{" + "x" * 2000 + "}")] * 20)
    evicted = list(box.health.evictions)
    box.delete(r.seq for r in box.fetch(PRIORITY_TELEMETRY, 0, 100_000))  # nothing left to evict for room
    box.reclaim(100_000)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")
    with contextlib.suppress(StoreError):
        while True:  # take the last free bytes of the last pages
            box.put([Entry(PRIORITY_EVENT, "campus/v1/test-school/gw-1/event/door", json.dumps({"pad": "d" * 500}))])
    rec.record(readings(5), [])
    assert box.health.evictions == []  # taken for the gap event, which the store refused
    box._db.execute("PRAGMA max_page_count = 1073741823")
    rec.record(readings(1), [])
    events = [json.loads(r.body) for r in box.fetch(PRIORITY_EVENT, 0, 100_000)]
    declared = {(e["detail"]["first_seq"], e["detail"]["last_seq"]) for e in events if e.get("class") == "gap"}
    assert evicted[0].first_seq == min(first for first, _ in declared)
    assert max(last for _, last in declared) == evicted[-1].last_seq


def test_recorder_keeps_the_alarm_when_the_store_cannot_even_be_read(tmp_path: Path) -> None:
    """A store that fails on its first read (a failing card; here its connection is gone) refuses the alarm as a
    store error: the alarm is kept in memory for the next try, and nothing raises out of the poll that recorded it."""
    rec, box = recorder(tmp_path)
    box._db.close()
    rec.record(readings(3), [fire(), door()])
    assert [json.loads(e.body)["class"] for e in rec.pending_alarms] == ["fire"]
    assert rec.store_failing
    assert box.health.store_errors > 0


def test_recorder_never_trims_a_held_gap_declaration(tmp_path: Path) -> None:
    """Beyond the bound on held events the oldest go, counted; a gap declaration the store refused is not among
    them (its seqs would be neither delivered nor declared)."""
    rec, box = recorder(tmp_path)
    gap = Entry(PRIORITY_EVENT, "campus/v1/test-school/gw-1/event/gap", json.dumps({"class": "gap"}))
    rec.pending_notes.append(gap)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(3):
        rec.record([], [door()] * 4000)
    assert len(rec.pending_events) == 10_000
    assert gap in rec.pending_notes
    box._db.execute("PRAGMA max_page_count = 1073741823")
    rec.record(readings(1), [])
    assert rec.pending_notes == []
    assert '{"class":"gap"}' in [r.body.replace(" ", "") for r in box.fetch(PRIORITY_EVENT, 0, 100_000)]
