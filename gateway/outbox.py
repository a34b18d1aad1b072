"""The durable outbox: every message the platform must receive is committed here first.

SQLite in WAL mode with `synchronous = FULL`, so a commit is on disk (fsync) before `put` returns. The row id is
the gateway-wide sequence number; AUTOINCREMENT guarantees it is never reused, even after rows are deleted.
Rows leave only when the broker has acknowledged the message that carried them, deleted by id.

Priorities: 2 alarms, 1 other events, 0 telemetry. The uplink reads each priority with its own cursor, highest
first, so an alarm committed behind a backlog of telemetry is the next thing sent.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

PRIORITY_ALARM = 2
PRIORITY_EVENT = 1
PRIORITY_TELEMETRY = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """A message to commit: `topic` is None for telemetry (batched by the uplink)."""

    priority: int
    topic: str | None
    body: str


@dataclass(frozen=True, slots=True)
class Row:
    """A committed message."""

    seq: int
    priority: int
    topic: str | None
    body: str


class Outbox:
    """The store-and-forward queue on local storage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._on_commit: list[Callable[[], None]] = []
        self._on_delete: list[Callable[[], None]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {path}: {exc}") from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise StoreError(f"outbox {self.path}: schema version {version}, expected {SCHEMA_VERSION}")
        self._db.executescript(
            """
            BEGIN;
            CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                priority INTEGER NOT NULL,
                topic TEXT,
                body TEXT NOT NULL,
                created_ms INTEGER NOT NULL
            );
            CREATE INDEX outbox_by_priority ON outbox (priority, seq);
            PRAGMA user_version = 1;
            COMMIT;
            """
        )

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every commit of new rows (the uplink wakes on it)."""
        self._on_commit.append(listener)

    def on_delete(self, listener: Callable[[], None]) -> None:
        """Call `listener` after acknowledged rows are deleted."""
        self._on_delete.append(listener)

    def put(self, entries: Sequence[Entry]) -> list[int]:
        """Commit entries in one transaction (fsync) and return their sequence numbers."""
        if not entries:
            return []
        now = time.time_ns() // 1_000_000
        try:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            seqs = []
            for e in entries:
                cur.execute(
                    "INSERT INTO outbox (priority, topic, body, created_ms) VALUES (?, ?, ?, ?)",
                    (e.priority, e.topic, e.body, now),
                )
                seqs.append(int(cur.lastrowid or 0))
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"outbox {self.path}: {exc}") from exc
        for listener in self._on_commit:
            listener()
        return seqs

    def fetch(self, priority: int, after_seq: int, limit: int) -> list[Row]:
        """Rows of one priority with seq above `after_seq`, oldest first."""
        rows = self._db.execute(
            "SELECT seq, priority, topic, body FROM outbox WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
            (priority, after_seq, limit),
        ).fetchall()
        return [Row(int(s), int(p), t, b) for s, p, t, b in rows]

    def delete(self, seqs: Iterable[int]) -> None:
        """Remove acknowledged rows by id."""
        ids = list(seqs)
        if not ids:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in ids])
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"outbox {self.path}: {exc}") from exc
        for listener in self._on_delete:
            listener()

    def depth(self) -> int:
        """Messages waiting."""
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def last_seq(self) -> int:
        """The highest sequence number ever assigned (survives deletes)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the database."""
        self._db.close()
