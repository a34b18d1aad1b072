"""The durable outbox: sequence numbers, priorities, durability across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.base.errors import NewerStoreError
from gateway.store.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY, SEQ_BLOCK, Entry, Limits, Outbox


def test_outbox_sequence_is_never_reused(tmp_path: Path) -> None:
    """Deleting every row and reopening the store does not reuse a sequence number."""
    box = Outbox(tmp_path / "o.db")
    seqs = box.put([Entry(PRIORITY_TELEMETRY, None, "{}") for _ in range(5)])
    assert seqs == [1, 2, 3, 4, 5]
    box.delete(seqs)
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert box.put([Entry(PRIORITY_ALARM, "t", "{}")]) == [6]
    assert box.last_seq() == 6


def test_outbox_rows_survive_reopen(tmp_path: Path) -> None:
    """What `put` returned is on disk: a new connection sees it."""
    box = Outbox(tmp_path / "o.db")
    box.put([Entry(PRIORITY_EVENT, "campus/x", '{"a":1}')])
    other = sqlite3.connect(tmp_path / "o.db")
    assert other.execute("SELECT topic, body FROM outbox").fetchall() == [("campus/x", '{"a":1}')]
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_outbox_fetch_by_priority_and_cursor(tmp_path: Path) -> None:
    """Each priority is read in seq order from its own cursor."""
    box = Outbox(tmp_path / "o.db")
    box.put([Entry(PRIORITY_TELEMETRY, None, "{}") for _ in range(3)])
    alarm = box.put([Entry(PRIORITY_ALARM, "fire", "{}")])[0]
    assert [r.seq for r in box.fetch(PRIORITY_ALARM, 0, 10)] == [alarm]
    assert [r.seq for r in box.fetch(PRIORITY_TELEMETRY, 1, 10)] == [2, 3]
    assert box.depth() == 4


def test_outbox_delete_only_named_rows(tmp_path: Path) -> None:
    """Acknowledged rows go by id; others stay."""
    box = Outbox(tmp_path / "o.db")
    box.put([Entry(PRIORITY_TELEMETRY, None, "{}") for _ in range(4)])
    box.delete([2, 3])
    assert [r.seq for r in box.fetch(PRIORITY_TELEMETRY, 0, 10)] == [1, 4]


def test_outbox_newer_schema_version_is_refused_not_moved_aside(tmp_path: Path) -> None:
    """A store of a newer schema version (a newer gateway's, after a downgrade) stops the gateway and stays put: a
    fresh store in its place would leave behind what it holds (tests/test_upgrades.py: with rows in it)."""
    db = sqlite3.connect(tmp_path / "o.db")
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', 7); PRAGMA user_version = 7;"
    )
    db.close()
    with pytest.raises(NewerStoreError) as refused:
        Outbox(tmp_path / "o.db")
    assert (refused.value.version, refused.value.supported) == (7, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.db"]


def test_outbox_a_header_claiming_a_newer_version_the_store_does_not_record_is_damage(tmp_path: Path) -> None:
    """One flipped bit of the header's user_version (1 -> 3) is not a newer gateway's store: moved aside like any
    damage and a fresh store started, so the gateway keeps running (the fault harness's flips found a crash loop)."""
    path = tmp_path / "o.db"
    box = Outbox(path)
    box.put([Entry(PRIORITY_ALARM, "fire", "{}")])
    box.close()
    data = bytearray(path.read_bytes())
    data[63] ^= 0b10  # user_version 1 -> 3, big-endian at offset 60
    path.write_bytes(bytes(data))
    box = Outbox(path)
    assert box.recovery.moved_aside is not None
    assert box.recovery.reason.endswith(
        "its header says schema version 3, which the store does not record: a damaged header"
    )
    assert box.put([Entry(PRIORITY_EVENT, "t", "{}")])
    box.close()


def test_outbox_notifies_on_commit(tmp_path: Path) -> None:
    """Listeners (the uplink) are told after each commit."""
    box = Outbox(tmp_path / "o.db")
    calls: list[int] = []
    box.on_commit(lambda: calls.append(box.depth()))
    box.put([Entry(PRIORITY_EVENT, "t", "{}")])
    assert calls == [1]


def telemetry(n: int, size: int = 100) -> list[Entry]:
    return [Entry(PRIORITY_TELEMETRY, None, "{" + "x" * size + "}") for _ in range(n)]


def test_outbox_bound_evicts_oldest_telemetry_never_alarms(tmp_path: Path) -> None:
    """Past the bound the oldest telemetry goes, and the run is recorded for a gap event; alarms stay. The bound
    holds every file of the store on disk."""
    bound = 1024 * 1024
    box = Outbox(tmp_path / "o.db", Limits(max_bytes=bound, max_disk_share=1.0))
    alarm = box.put([Entry(PRIORITY_ALARM, "fire", "{}")])[0]
    for _ in range(20):
        box.put(telemetry(100))  # about 15 kB each
    assert box.take_evictions() == []
    for _ in range(60):
        box.put(telemetry(100))
        assert on_disk(box) <= bound
    evictions = box.take_evictions()
    assert evictions
    assert evictions[0].first_seq == 2
    assert sum(e.count for e in evictions) == box.health.evicted_rows
    assert [r.seq for r in box.fetch(PRIORITY_ALARM, 0, 10)] == [alarm]
    remaining = [r.seq for r in box.fetch(PRIORITY_TELEMETRY, 0, 10_000)]
    assert remaining == sorted(remaining)
    assert remaining[0] == evictions[-1].last_seq + 1
    assert remaining[-1] == box.last_seq()


def on_disk(box: Outbox) -> int:
    """What the store's files take, read from outside it: the database's pages (also those still in the WAL),
    the WAL, its index, the ballast, the reservation."""
    pages = int(box._db.execute("PRAGMA page_count").fetchone()[0]) * 4096
    others = [Path(str(box.path) + s) for s in ("-wal", "-shm", ".ballast", ".seq-reserved")]
    return max(pages, box.path.stat().st_size) + sum(p.stat().st_size for p in others if p.exists())


def test_outbox_bound_counts_bytes_like_the_table(tmp_path: Path) -> None:
    """The byte count kept in memory matches the rows on disk after puts, deletes and a reopen."""
    box = Outbox(tmp_path / "o.db")
    box.put(telemetry(10, 50))
    box.put([Entry(PRIORITY_EVENT, "campus/t", '{"a":1}')])
    box.delete([1, 2, 11])
    counted = box.bytes
    box.close()
    assert Outbox(tmp_path / "o.db").bytes == counted


def test_outbox_full_database_still_takes_an_alarm(tmp_path: Path) -> None:
    """When SQLite reports the store full, telemetry makes room and the alarm is committed."""
    box = Outbox(tmp_path / "o.db", Limits(max_bytes=10**9, max_disk_share=1.0))
    box.put(telemetry(400, 1000))
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: the disk is full
    seq = box.put([Entry(PRIORITY_ALARM, "fire", "{" + "y" * 3000 + "}")])[0]
    assert [r.seq for r in box.fetch(PRIORITY_ALARM, 0, 10)] == [seq]
    assert box.health.evicted_rows > 0
    assert box.take_evictions()[0].first_seq == 1


def test_outbox_reclaims_space_after_deletes(tmp_path: Path) -> None:
    """Deleting acknowledged rows and reclaiming shrinks the file (incremental vacuum)."""
    path = tmp_path / "o.db"
    box = Outbox(path)
    seqs = box.put(telemetry(2000, 500))
    box.reclaim()
    big = path.stat().st_size
    box.delete(seqs)
    assert box.free_pages() > 100
    box.reclaim(100_000)
    assert box.free_pages() == 0
    assert path.stat().st_size < big / 4


def test_outbox_sequence_survives_store_replacement(tmp_path: Path) -> None:
    """A replaced (corrupt) store resumes above every number the old one could have used."""
    path = tmp_path / "o.db"
    box = Outbox(path)
    used = box.put(telemetry(5))[-1]
    box.close()
    path.write_bytes(b"this is not a database" * 100)
    fresh = Outbox(path)
    assert fresh.recovery.moved_aside is not None
    nxt = fresh.put(telemetry(1))[0]
    assert nxt > used
    assert nxt == fresh.recovery.resumed_at_seq
    assert nxt >= SEQ_BLOCK


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, min(len(data), offset + 64)):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


def _garbage_wal(path: Path) -> None:
    Path(str(path) + "-wal").write_bytes(bytes(range(256)) * 64)


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _other_db(path: Path) -> None:
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (id INTEGER)")
    db.commit()
    db.close()


def _text(path: Path) -> None:
    path.write_text("[site]\nid = 'oops, this is a config file'\n")


@pytest.mark.parametrize(
    ("damage", "moved"),
    [
        (_truncate, True),
        (lambda p: _flip(p, 0), True),  # the header
        (lambda p: _flip(p, 4096), True),  # the first b-tree page
        (_zero, True),
        (_other_db, True),
        (_text, True),
        (_garbage_wal, False),  # SQLite ignores a WAL whose checksums fail: the store is intact
    ],
    ids=["truncated", "flipped-header", "flipped-page", "zero-length", "other-db", "text-file", "garbage-wal"],
)
def test_outbox_damaged_store_is_moved_aside_not_fatal(tmp_path: Path, damage: object, moved: bool) -> None:
    """Each kind of damage is detected (or harmless); the gateway never fails to open a store."""
    path = tmp_path / "o.db"
    box = Outbox(path)
    box.put(telemetry(300, 200))
    box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    box.close()
    damage(path)  # type: ignore[operator]
    fresh = Outbox(path)
    assert (fresh.recovery.moved_aside is not None) == moved
    assert fresh.integrity_ok()
    fresh.put([Entry(PRIORITY_ALARM, "fire", "{}")])
    if moved:
        assert fresh.recovery.moved_aside is not None
        assert fresh.recovery.moved_aside.name.startswith("o.db.corrupt-")
        assert fresh.recovery.reason
