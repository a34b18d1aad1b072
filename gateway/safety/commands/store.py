"""What must survive a restart for replays to stay refused: each issuer's highest sequence number, and every
command id seen with its result, kept until well past its expiry (state_dir/commands.db, SQLite, synchronous).

A command is recorded *before* it acts, in one transaction with its issuer's sequence number: a power cut between
the two can lose an action, never repeat one.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issuer_seq (issuer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (
    cmd_id TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    digest TEXT NOT NULL,
    keep_until_ms INTEGER NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_keep ON seen (keep_until_ms);
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """A command accepted before: its sequence number, the digest of its body, and its latest result."""

    seq: int
    digest: str
    result: dict[str, Any]


class CommandStore:
    """The replay state on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def last_seq(self, issuer: str) -> int:
        """The highest sequence number accepted from `issuer` (0: none yet)."""
        row = self._db.execute("SELECT seq FROM issuer_seq WHERE issuer = ?", (issuer,)).fetchone()
        return int(row[0]) if row else 0

    def seen(self, cmd_id: str) -> Seen | None:
        """The record of a command id accepted before, or None."""
        row = self._db.execute("SELECT seq, digest, result FROM seen WHERE cmd_id = ?", (cmd_id,)).fetchone()
        if row is None:
            return None
        return Seen(int(row[0]), str(row[1]), json.loads(row[2]))

    def accept(self, cmd_id: str, issuer: str, seq: int, digest: str, keep_until_ms: int) -> None:
        """Record an accepted command and raise its issuer's sequence number, durably, before it acts."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO issuer_seq (issuer, seq) VALUES (?, ?) "
                "ON CONFLICT (issuer) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                (issuer, seq),
            )
            self._db.execute(
                "INSERT INTO seen (cmd_id, issuer, seq, digest, keep_until_ms, result) VALUES (?, ?, ?, ?, ?, ?)",
                (cmd_id, issuer, seq, digest, keep_until_ms, json.dumps({"status": "accepted"})),
            )

    def set_result(self, cmd_id: str, result: dict[str, Any]) -> None:
        """The latest result of an accepted command, returned to anyone who sends it again."""
        with self._db:
            self._db.execute("UPDATE seen SET result = ? WHERE cmd_id = ?", (json.dumps(result), cmd_id))

    def prune(self, now_ms: int) -> int:
        """Forget command ids whose keeping time has passed (their sequence numbers still refuse them)."""
        with self._db:
            return self._db.execute("DELETE FROM seen WHERE keep_until_ms < ?", (now_ms,)).rowcount

    def close(self) -> None:
        """Close the database."""
        self._db.close()
