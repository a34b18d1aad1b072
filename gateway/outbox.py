"""The durable outbox: every message the platform must receive is committed here first.

SQLite in WAL mode with `synchronous = FULL`, so a commit is on disk (fsync) before `put` returns. The row id is
the gateway-wide sequence number. AUTOINCREMENT keeps it from being reused after deletes; a reservation file
beside the store (`seq.reserved`) keeps it from being reused even when a corrupt store has to be replaced.

Priorities: 2 alarms, 1 other events, 0 telemetry. The uplink reads each priority with its own cursor, highest
first, so an alarm committed behind a backlog of telemetry is the next thing sent.

The store is bounded (bytes, and a share of the free disk). When full, the oldest telemetry goes, a tenth of the
bound at a time so that evictions (and the gap events that declare them) stay rare; events, alarms among them,
are never evicted. A disk that fills up anyway is met with a ballast file released to make room for alarms.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

PRIORITY_ALARM = 2
PRIORITY_EVENT = 1
PRIORITY_TELEMETRY = 0

ROW_OVERHEAD = 48  # bytes per row beyond topic and body: rowid, integers, record and index entries
FREE_RECHECK_S = 1.0
SEQ_BLOCK = 10_000  # sequence numbers reserved ahead in `seq.reserved`
BALLAST_BYTES = 2 * 1024 * 1024
EVICT_SHARE = 10  # evict 1/10 of the bound at a time

_FULL_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR")


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


@dataclass(frozen=True, slots=True)
class Eviction:
    """A run of evicted rows, declared to the platform as a gap."""

    first_seq: int
    last_seq: int
    count: int
    bytes: int


@dataclass(slots=True)
class Recovery:
    """What happened when the store was opened."""

    moved_aside: Path | None = None
    reason: str = ""
    resumed_at_seq: int = 0


@dataclass(slots=True)
class Limits:
    """How much the outbox may hold: `max_bytes`, and at most `max_disk_share` of (free disk + outbox)."""

    max_bytes: int = 512 * 1024 * 1024
    max_disk_share: float = 0.5
    warn_share: float = 0.8


@dataclass(slots=True)
class Health:
    """Counters and flags the gateway reports as health telemetry."""

    evicted_rows: int = 0
    evictions: list[Eviction] = field(default_factory=list)
    store_errors: int = 0
    last_error: str = ""
    ballast_released: bool = False


def _errname(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


class Outbox:
    """The store-and-forward queue on local storage."""

    def __init__(self, path: Path, limits: Limits | None = None) -> None:
        self.path = path
        self.limits = limits or Limits()
        self.health = Health()
        self.recovery = Recovery()
        self._on_commit: list[Callable[[], None]] = []
        self._on_delete: list[Callable[[], None]] = []
        self._reserved_path = path.with_name(path.name + ".seq-reserved")
        self._ballast = path.with_name(path.name + ".ballast")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"outbox {path}: cannot create {path.parent}: {exc.strerror}") from exc
        self._db = self._open_checked()
        self._free_at = -1e9  # when the free disk space was last read (monotonic), and what it was
        self._free = 0
        self.bytes = int(
            self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body) + COALESCE(LENGTH(topic), 0)), 0) + COUNT(*) * ? FROM outbox",
                (ROW_OVERHEAD,),
            ).fetchone()[0]
        )
        self._reserved = self._read_reserved()
        floor = self._reserved if self.recovery.moved_aside else 0
        if floor > self.last_seq():
            self._set_next_seq(floor)
            self.recovery.resumed_at_seq = floor + 1
        self._reserve(0)
        self._keep_ballast()

    # -- opening, checking, recovering -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect on a new file, before any table
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        return db

    def _open_checked(self) -> sqlite3.Connection:
        """Open the store; a store that is not ours or not whole is moved aside and a fresh one started."""
        reason = ""
        if self.path.exists() and self.path.stat().st_size == 0:
            reason = "zero-length file"
        else:
            db: sqlite3.Connection | None = None
            try:
                db = self._connect()
                check = db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    reason = f"quick_check: {check}"
                else:
                    self._migrate(db)
                    db.execute("SELECT seq, priority, topic, body, created_ms FROM outbox LIMIT 1").fetchall()
                    return db
            except (sqlite3.DatabaseError, StoreError) as exc:
                reason = str(exc)
            if db is not None:
                # Closed before its files move: an open connection would keep writing to the moved WAL.
                with contextlib.suppress(sqlite3.Error):
                    db.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        log.error("outbox %s is unusable (%s): moved to %s, starting a fresh store", self.path, reason, aside)
        self.recovery = Recovery(aside, reason)
        try:
            db = self._connect()
            self._migrate(db)
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {self.path}: cannot create a fresh store: {exc}") from exc
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise StoreError(f"outbox {self.path}: schema version {version}, expected {SCHEMA_VERSION}")
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        if tables:
            raise StoreError(f"outbox {self.path}: not a campus-edge outbox (has tables {[t[0] for t in tables]})")
        db.executescript(
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

    def _read_reserved(self) -> int:
        try:
            return int(self._reserved_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _reserve(self, upcoming: int) -> None:
        """Make sure `seq.reserved` is ahead of every sequence number about to be used, durably."""
        needed = self.last_seq() + upcoming
        if needed < self._reserved:
            return
        mark = needed + SEQ_BLOCK
        tmp = self._reserved_path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(f"{mark}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._reserved_path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            # Without a reservation the sequence is still unique while this store lives; only a replaced store
            # could reuse numbers. Go on, but say so.
            self.health.last_error = f"cannot write {self._reserved_path}: {exc.strerror}"
            log.warning("outbox: %s", self.health.last_error)
            return
        self._reserved = mark

    def _set_next_seq(self, last: int) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (last,))
        self._db.execute("COMMIT")

    def _keep_ballast(self) -> None:
        """A file whose space is given back to alarms when the disk fills up."""
        if self._ballast.exists():
            return
        try:
            with open(self._ballast, "wb") as f:
                f.truncate(0)
                f.write(b"\0" * BALLAST_BYTES)
                f.flush()
                os.fsync(f.fileno())
            self.health.ballast_released = False
        except OSError:
            self._ballast.unlink(missing_ok=True)

    # -- writing ------------------------------------------------------------------------------------------------

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every commit of new rows (the uplink wakes on it)."""
        self._on_commit.append(listener)

    def on_delete(self, listener: Callable[[], None]) -> None:
        """Call `listener` after acknowledged rows are deleted."""
        self._on_delete.append(listener)

    def limit_bytes(self) -> int:
        """The current bound: the smaller of `max_bytes` and the allowed share of the disk.

        The free space is read at most every FREE_RECHECK_S: statvfs on every commit cost more than the insert.
        """
        now = time.monotonic()
        if now - self._free_at >= FREE_RECHECK_S:
            self._free = self._disk_free()
            self._free_at = now
        return min(self.limits.max_bytes, int((self._free + self.bytes) * self.limits.max_disk_share))

    def usage(self) -> float:
        """Fraction of the bound in use."""
        return self.bytes / max(1, self.limit_bytes())

    def put(self, entries: Sequence[Entry]) -> list[int]:
        """Commit entries in one transaction (fsync) and return their sequence numbers.

        Makes room first by evicting telemetry when the bound would be passed. On a full disk or an I/O error it
        releases the ballast, evicts, and tries once more.

        Raises:
            StoreError: the entries could not be committed; nothing of them is in the store.
        """
        if not entries:
            return []
        alarm = any(e.priority == PRIORITY_ALARM for e in entries)
        if not alarm and self.health.ballast_released and self._disk_free() < 2 * BALLAST_BYTES:
            # The ballast went to an alarm and the disk is still nearly full: what is left is kept for alarms.
            self.health.store_errors += 1
            self.health.last_error = "disk nearly full: room is kept for alarms"
            raise StoreError(f"outbox {self.path}: {self.health.last_error}")
        size = sum(len(e.body) + len(e.topic or "") + ROW_OVERHEAD for e in entries)
        limit = self.limit_bytes()
        if self.bytes + size > limit:
            self._evict(max(self.bytes + size - limit, limit // EVICT_SHARE))
        self._reserve(len(entries))
        try:
            seqs = self._insert(entries)
        except sqlite3.Error as exc:
            self._free_at = -1e9  # the disk may have filled since it was last read
            if not _errname(exc).startswith(_FULL_ERRORS):
                self._fail(exc)
            log.error("outbox %s: %s; evicting telemetry%s", self.path, exc, " and releasing the ballast" * alarm)
            if alarm:
                self._release_ballast()  # the ballast is for alarms only: telemetry would use it up
            self._evict(max(size, self.bytes // 10))
            try:
                seqs = self._insert(entries)
            except sqlite3.Error as again:
                self._fail(again)
        self.bytes += size
        if self.health.ballast_released and not alarm and self._disk_free() > 4 * BALLAST_BYTES:
            self._keep_ballast()  # the disk has room again
        for listener in self._on_commit:
            listener()
        return seqs

    def _disk_free(self) -> int:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def _fail(self, exc: sqlite3.Error) -> None:
        self.health.store_errors += 1
        self.health.last_error = str(exc)
        raise StoreError(f"outbox {self.path}: {exc}") from exc

    def _insert(self, entries: Sequence[Entry]) -> list[int]:
        now = time.time_ns() // 1_000_000
        cur = self._db.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany(
                "INSERT INTO outbox (priority, topic, body, created_ms) VALUES (?, ?, ?, ?)",
                [(e.priority, e.topic, e.body, now) for e in entries],
            )
            # One writer inside BEGIN IMMEDIATE: AUTOINCREMENT numbered the rows consecutively up to here.
            last = int(cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0])
            seqs = list(range(last - len(entries) + 1, last + 1))
            cur.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return seqs

    def _release_ballast(self) -> None:
        if self._ballast.exists():
            self._ballast.unlink(missing_ok=True)
            self.health.ballast_released = True

    def _evict(self, need_bytes: int) -> None:
        """Delete the oldest telemetry until `need_bytes` are freed (or no telemetry is left)."""
        freed = 0
        for priority in (PRIORITY_TELEMETRY,):
            while freed < need_bytes:
                rows = self._db.execute(
                    "SELECT seq, LENGTH(body) + COALESCE(LENGTH(topic), 0) FROM outbox WHERE priority = ? "
                    "ORDER BY seq LIMIT 500",
                    (priority,),
                ).fetchall()
                if not rows:
                    break
                take = []
                for seq, length in rows:
                    take.append((int(seq), int(length) + ROW_OVERHEAD))
                    freed += int(length) + ROW_OVERHEAD
                    if freed >= need_bytes:
                        break
                gone = self._delete_rows([s for s, _ in take], "evict")
                if gone is None:
                    return
                ev = Eviction(take[0][0], take[-1][0], len(take), gone)
                self.health.evictions.append(ev)
                self.health.evicted_rows += len(take)
                log.warning("outbox full: evicted %d rows, seq %d-%d", ev.count, ev.first_seq, ev.last_seq)
        self.reclaim()

    def take_evictions(self) -> list[Eviction]:
        """Evictions not yet declared to the platform, runs that follow each other merged into one."""
        merged: list[Eviction] = []
        for ev in self.health.evictions:
            if merged and ev.first_seq > merged[-1].last_seq:
                prev = merged[-1]
                between = self._db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE priority = ? AND seq > ? AND seq < ?",
                    (PRIORITY_TELEMETRY, prev.last_seq, ev.first_seq),
                ).fetchone()[0]
                if between == 0:
                    merged[-1] = Eviction(prev.first_seq, ev.last_seq, prev.count + ev.count, prev.bytes + ev.bytes)
                    continue
            merged.append(ev)
        self.health.evictions = []
        return merged

    # -- reading and acknowledging -------------------------------------------------------------------------------

    def fetch(self, priority: int, after_seq: int, limit: int) -> list[Row]:
        """Rows of one priority with seq above `after_seq`, oldest first."""
        rows = self._db.execute(
            "SELECT seq, priority, topic, body FROM outbox WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
            (priority, after_seq, limit),
        ).fetchall()
        return [Row(int(s), int(p), t, b) for s, p, t, b in rows]

    def delete(self, seqs: Iterable[int]) -> None:
        """Remove acknowledged rows by id (on failure they stay, and are sent again)."""
        ids = list(seqs)
        if ids and self._delete_rows(ids, "delete acknowledged rows") is not None:
            for listener in self._on_delete:
                listener()

    def delete_sent(self, rows: Sequence[Row]) -> None:
        """Remove rows the broker acknowledged, as fetched: their sizes are known, so one statement does it.

        Not synced to disk on its own (the next commit syncs it): a delete lost to a power cut only means the rows
        are sent again, which at-least-once delivery allows.
        """
        if not rows:
            return
        try:
            self._db.execute("PRAGMA synchronous = NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                deleted = self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(r.seq,) for r in rows]).rowcount
                if deleted != len(rows):
                    # Some were gone already (acknowledged twice): count bytes row by row instead.
                    self._db.execute("ROLLBACK")
                    self.delete(r.seq for r in rows)
                    return
                self._db.execute("COMMIT")
            finally:
                self._db.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            self._delete_failed(exc, "delete acknowledged rows")
            return
        self.bytes -= sum(len(r.body) + len(r.topic or "") + ROW_OVERHEAD for r in rows)
        for listener in self._on_delete:
            listener()

    def _delete_rows(self, ids: list[int], what: str) -> int | None:
        """Delete rows in one transaction; the bytes freed, or None (counted and logged) if the store refused."""
        freed = 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for s in ids:
                row = self._db.execute(
                    "DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(body) + COALESCE(LENGTH(topic), 0)", (s,)
                ).fetchone()
                if row is not None:
                    freed += int(row[0]) + ROW_OVERHEAD
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._delete_failed(exc, what)
            return None
        self.bytes -= freed
        return freed

    def _delete_failed(self, exc: sqlite3.Error, what: str) -> None:
        """A refused delete leaves the rows (they are sent again); it is counted and logged."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self.health.store_errors += 1
        self.health.last_error = str(exc)
        log.error("outbox %s: cannot %s: %s", self.path, what, exc)

    def delete_upto(self, seq: int) -> int:
        """Remove every row with a sequence number up to `seq` (the platform's cumulative acknowledgement)."""
        ids = [int(r[0]) for r in self._db.execute("SELECT seq FROM outbox WHERE seq <= ?", (seq,)).fetchall()]
        self.delete(ids)
        return len(ids)

    def reclaim(self, pages: int = 2000) -> None:
        """Give free pages back to the file system (SQLite does not shrink a file by itself)."""
        try:
            # The pragma steps once per page: execute() would free a single page; executescript runs it through.
            self._db.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("outbox %s: reclaim failed: %s", self.path, exc)
            return
        if self.health.ballast_released:
            self._keep_ballast()

    def free_pages(self) -> int:
        """Pages on SQLite's free list, waiting for `reclaim`."""
        return int(self._db.execute("PRAGMA freelist_count").fetchone()[0])

    def depth(self) -> int:
        """Messages waiting."""
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def oldest_created_ms(self) -> int | None:
        """Wall time (ms) the oldest message still waiting was committed; None when none waits."""
        row = self._db.execute("SELECT created_ms FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return int(row[0]) if row else None

    def last_seq(self) -> int:
        """The highest sequence number ever assigned (survives deletes)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def integrity_ok(self) -> bool:
        """SQLite's full integrity check."""
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        """Close the database."""
        self._db.close()
