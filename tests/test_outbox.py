"""The durable outbox: sequence numbers, priorities, durability across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.errors import StoreError
from gateway.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY, Entry, Outbox


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


def test_outbox_refuses_unknown_schema_version(tmp_path: Path) -> None:
    """A store written by a newer schema is not silently reused."""
    db = sqlite3.connect(tmp_path / "o.db")
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(StoreError, match="schema version 7, expected 1"):
        Outbox(tmp_path / "o.db")


def test_outbox_notifies_on_commit(tmp_path: Path) -> None:
    """Listeners (the uplink) are told after each commit."""
    box = Outbox(tmp_path / "o.db")
    calls: list[int] = []
    box.on_commit(lambda: calls.append(box.depth()))
    box.put([Entry(PRIORITY_EVENT, "t", "{}")])
    assert calls == [1]
