"""The durable outbox: every message the platform must receive is committed here first.

SQLite in WAL mode with `synchronous = FULL`, so a commit is on disk (fsync) before `put` returns. The row id is
the gateway-wide sequence number. AUTOINCREMENT keeps it from being reused after deletes; a reservation file
beside the store (`seq.reserved`) keeps it from being reused even when a corrupt store has to be replaced.

Priorities: 2 alarms, 1 other events, 0 telemetry. The uplink reads each priority with its own cursor, highest
first, so an alarm committed behind a backlog of telemetry is the next thing sent.

The store is bounded (bytes, and a share of the disk), and the bound counts every file it keeps on disk: the
database, its WAL (kept small by frequent checkpoints and a journal size limit) and shared memory, the ballast and
the seq reservation. When full, the oldest telemetry goes, a tenth of the bound at a time so that evictions (and
the gap events that declare them) stay rare; events, alarms among them, are never evicted. A disk that fills up
anyway (another file took it) is met with a ballast file inside the bound: given up to make the room that an
alarm, or a delete that frees space, needs, and made again only once it fits.
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
from typing import NoReturn, TypeVar

from gateway.base.errors import NewerStoreError, StoreError
from gateway.base.statefile import write_durably

log = logging.getLogger(__name__)

# The store's schema, step by step: MIGRATIONS[n] takes a store at user_version n to n + 1, in one transaction
# with the new user_version. 0 -> 1 creates the store (0.1.0's schema, unchanged since). A gateway meets an older
# store after an upgrade and migrates it; a newer one (after a downgrade) it refuses, and leaves as it is.
# Every version after 1 also records itself in the store, `meta` ('schema_version', N), written in the step's own
# transaction (1 -> 2 creates the table): a header whose user_version says newer while the store does not say so
# itself is a damaged header (one flipped bit of it), moved aside like any damage, not a newer gateway's store.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        priority INTEGER NOT NULL,
        topic TEXT,
        body TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX outbox_by_priority ON outbox (priority, seq);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# SQLite's file header (sqlite.org/fileformat.html): its magic, and PRAGMA user_version as a big-endian int at 60.
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER_BYTES = 100
USER_VERSION_AT = 60

PRIORITY_ALARM = 2
PRIORITY_EVENT = 1
PRIORITY_TELEMETRY = 0

ROW_OVERHEAD = 48  # bytes per row beyond topic and body: rowid, integers, record and index entries
FREE_RECHECK_S = 1.0
SEQ_BLOCK = 10_000  # sequence numbers reserved ahead in `seq.reserved`
BALLAST_BYTES = 2 * 1024 * 1024  # at most; an eighth of the bound on a small disk
EVICT_SHARE = 10  # evict 1/10 of the bound at a time
WAL_PAGES_MAX = 1000  # SQLite's default checkpoint interval; a sixteenth of the bound on a small disk
WAL_PAGES_MIN = 8
SHM_BYTES = 32 * 1024  # the WAL index: one 32 KiB region covers 4,096 frames, more than the WAL ever holds
RECLAIM_STEP = 256  # pages given back per incremental vacuum: each moved page goes through the WAL first

_FULL_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR")

_T = TypeVar("_T")


class MigrationError(StoreError):
    """An older store could not be brought to this gateway's version: it stays as it was, and the gateway does not
    start (a fresh store would leave what it holds behind)."""


class _Recount(Exception):
    """Some rows of a delete were gone already: roll back and count the bytes row by row."""


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
    undeleted_rows: int = 0  # delivered, not yet deleted: the disk refused the delete, it is tried again


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
        self._wal = Path(str(path) + "-wal")
        self._files = (path, self._wal, Path(str(path) + "-shm"), self._ballast, self._reserved_path)
        self._undeleted: list[tuple[int, int]] = []
        self._usage = 0.0  # (seq, bytes) of delivered rows whose delete failed
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"outbox {path}: cannot create {path.parent}: {exc.strerror}") from exc
        self._db = self._open_checked()
        self._page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        # What the store may take of its file system, read at most every FREE_RECHECK_S: statvfs and a stat of
        # each file on every commit cost more than the insert.
        self._free_at = -1e9
        self._free = 0
        self._limit = 0
        self.bytes = int(
            self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body) + COALESCE(LENGTH(topic), 0)), 0) + COUNT(*) * ? FROM outbox",
                (ROW_OVERHEAD,),
            ).fetchone()[0]
        )
        self._refresh_limit()
        self._wal_pages = max(WAL_PAGES_MIN, min(WAL_PAGES_MAX, self._limit // (16 * self._page)))
        self._db.execute(f"PRAGMA wal_autocheckpoint = {self._wal_pages}")
        self._db.execute(f"PRAGMA journal_size_limit = {2 * self._wal_pages * self._page}")
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
        """Open the store; a store that is not ours or not whole is moved aside and a fresh one started.

        Raises:
            NewerStoreError: a newer gateway wrote the store. It is whole and not ours to read: left as it is.
        """
        self._refuse_newer()
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
            except (NewerStoreError, MigrationError):
                if db is not None:
                    db.close()  # whole, and kept: a newer gateway reads it, or this one once the cause is fixed
                raise
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

    def _refuse_newer(self) -> None:
        """Refuse a store newer than this gateway's, read from its header without opening it: even a read-only
        connection leaves a WAL index beside it. A file that is not a database is left to the checks that follow;
        a newer version still in a WAL that was never checkpointed, to `_migrate`."""
        try:
            with self.path.open("rb") as f:
                header = f.read(SQLITE_HEADER_BYTES)
        except OSError:  # none yet, or unreadable: the opening that follows meets it as before
            return
        if len(header) < SQLITE_HEADER_BYTES or not header.startswith(SQLITE_MAGIC):
            return
        version = int.from_bytes(header[USER_VERSION_AT : USER_VERSION_AT + 4], "big", signed=True)
        if version <= SCHEMA_VERSION:
            return
        # Read as immutable: no WAL index or journal is made beside a store that is not ours.
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error:
            return
        try:
            recorded = _recorded_version(db)
        finally:
            db.close()
        if recorded == version:
            raise NewerStoreError(str(self.path), version, SCHEMA_VERSION)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the store to SCHEMA_VERSION, a step of MIGRATIONS at a time, each in its own transaction."""
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            if _recorded_version(db) == version:  # written since _refuse_newer looked: a newer gateway still running
                raise NewerStoreError(str(self.path), version, SCHEMA_VERSION)
            raise StoreError(
                f"outbox {self.path}: its header says schema version {version}, which the store does not record: "
                "a damaged header"
            )
        if version == 0:
            tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            if tables:
                raise StoreError(f"outbox {self.path}: not a campus-edge outbox (has tables {[t[0] for t in tables]})")
        for step in range(version, SCHEMA_VERSION):
            try:
                db.executescript(f"BEGIN; {MIGRATIONS[step]} PRAGMA user_version = {step + 1}; COMMIT;")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if not step:
                    raise
                raise MigrationError(f"outbox {self.path}: cannot migrate from version {step}: {exc}") from exc
            if step:
                log.warning("outbox %s: schema migrated from version %d to %d", self.path, step, step + 1)

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
        try:
            write_durably(self._reserved_path, f"{mark}\n".encode())
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

    # -- what the store takes of its file system ---------------------------------------------------------------

    def _on_disk(self) -> int:
        """Bytes the store's files take on the file system now, as allocated blocks."""
        total = 0
        for f in self._files:
            with contextlib.suppress(OSError):
                total += f.stat().st_blocks * 512
        return total

    def _refresh_limit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._free_at < FREE_RECHECK_S:
            return
        self._free_at = now
        try:
            total, _used, self._free = shutil.disk_usage(self.path.parent)
        except OSError:
            total, self._free = 0, 0
        own = self._on_disk()
        share = self.limits.max_disk_share
        # What the store holds already, within its share of the whole file system, it keeps: another file that
        # fills the disk stops the store growing, but does not make it throw its own rows away.
        self._limit = min(self.limits.max_bytes, max(int((self._free + own) * share), min(own, int(total * share))))
        if self.health.ballast_released:
            self._keep_ballast()  # the disk may have room again

    def limit_bytes(self) -> int:
        """The current bound on everything the store keeps on disk: the smaller of `max_bytes` and the allowed
        share of (free disk + the store's own files), never below what the store holds within its share of the
        file system."""
        self._refresh_limit()
        return self._limit

    def _ballast_bytes(self) -> int:
        """The ballast for this bound, in whole pages."""
        return min(BALLAST_BYTES, self._limit // 8) // self._page * self._page

    def _overhead(self) -> int:
        """What the bound holds besides the database's pages: the WAL at its limit (its checkpoint interval, and
        as much again for one transaction past it), the WAL index, the ballast, the reservation file's block."""
        return 2 * self._wal_pages * self._page + SHM_BYTES + self._ballast_bytes() + self._page

    def _budget(self) -> int:
        """Bytes the database file may take."""
        return self._limit - self._overhead()

    def _pages(self) -> tuple[int, int]:
        """The database's pages, and how many of them are free (reused before the file grows).

        Raises:
            StoreError: the store cannot be read (a failing card): the caller's own refusal path takes it, an alarm
                kept in memory and retried, never a raw sqlite3 error out of `put`.
        """
        try:
            pages, free = self._db.execute("SELECT * FROM pragma_page_count(), pragma_freelist_count()").fetchone()
        except sqlite3.Error as exc:
            self._fail(exc)
        return int(pages), int(free)

    def _ratio(self) -> float:
        """Bytes of pages per byte counted in `bytes`: how many pages a row of a given size takes."""
        if self.bytes < 64 * 1024:
            return 1.25
        pages, free = self._pages()
        return min(4.0, max(0.5, (pages - free) * self._page / self.bytes))

    def _keep_ballast(self) -> None:
        """A file whose space is given up when the disk is full: to an alarm, or to a delete that frees space.

        Made only when it fits inside the bound and the disk has room for it twice over, so that a disk another
        file filled is not taken again by the ballast the moment a little space frees.
        """
        size = self._ballast_bytes()
        if self._ballast.exists() or size == 0:
            return
        if self._on_disk() + size > self._limit or self._disk_free() < 2 * size:
            return
        try:
            with open(self._ballast, "wb") as f:
                f.write(b"\0" * size)
                f.flush()
                os.fsync(f.fileno())
            self.health.ballast_released = False
        except OSError:
            self._ballast.unlink(missing_ok=True)

    def _release_ballast(self) -> bool:
        """Give the ballast's space back to the file system; False if there was none to give."""
        if not self._ballast.exists():
            return False
        self._ballast.unlink(missing_ok=True)
        self.health.ballast_released = True
        self._free_at = -1e9
        log.warning("outbox %s: disk full: ballast released", self.path)
        return True

    # -- writing ------------------------------------------------------------------------------------------------

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every commit of new rows (the uplink wakes on it)."""
        self._on_commit.append(listener)

    def on_delete(self, listener: Callable[[], None]) -> None:
        """Call `listener` after acknowledged rows are deleted."""
        self._on_delete.append(listener)

    def usage(self) -> float:
        """Fraction of the database's share of the bound in use (the last one known while the store cannot be read:
        a health figure must not stop the flush that calls it)."""
        self._refresh_limit()
        try:
            pages, free = self._pages()
        except StoreError:
            return self._usage
        self._usage = (pages - free) * self._page / max(self._page, self._budget())
        return self._usage

    def put(self, entries: Sequence[Entry]) -> list[int]:
        """Commit entries in one transaction (fsync) and return their sequence numbers.

        Makes room first by evicting telemetry when the bound would be passed. On a full disk or an I/O error it
        evicts telemetry (an alarm also takes the ballast's space) and tries once more.

        Raises:
            StoreError: the entries could not be committed; nothing of them is in the store.
        """
        if not entries:
            return []
        alarm = any(e.priority == PRIORITY_ALARM for e in entries)
        # The ballast is gone and the disk still nearly full: what is left is kept for alarms. Anything else goes
        # in only where older telemetry makes room inside the file as it is (the newest readings are kept).
        grow = alarm or not (
            self.health.ballast_released and self._disk_free() < 2 * max(self._ballast_bytes(), 64 * self._page)
        )
        size = sum(len(e.body) + len(e.topic or "") + ROW_OVERHEAD for e in entries)
        self._refresh_limit()
        self._make_room(size, grow)
        self._reserve(len(entries))
        try:
            seqs = self._write(lambda cur: self._insert(cur, entries), ballast=alarm)
        except sqlite3.Error as exc:
            self._free_at = -1e9  # the disk may have filled since it was last read
            if not _errname(exc).startswith(_FULL_ERRORS):
                self._fail(exc)
            log.error("outbox %s: %s; evicting telemetry", self.path, exc)
            self._evict(max(int(size * self._ratio()) + self._page, self._budget() // EVICT_SHARE))
            try:
                seqs = self._write(lambda cur: self._insert(cur, entries), ballast=alarm)
            except sqlite3.Error as again:
                self._fail(again)
        self.bytes += size
        if self._undeleted:
            self.delete_sent(())  # the disk took this commit: it takes the deletes it refused before
        for listener in self._on_commit:
            listener()
        return seqs

    def _make_room(self, size: int, grow: bool = True) -> None:
        """Evict telemetry, and give free pages back, so that a commit of `size` bytes stays inside the bound
        (without `grow`, inside the database file as it is)."""
        budget = self._budget()
        pages, free = self._pages()
        if not grow:
            budget = min(budget, pages * self._page)
        need = (pages - free) * self._page + int(size * self._ratio()) + self._page - budget
        if need > 0:
            self._evict(max(need, budget // EVICT_SHARE))
            pages, free = self._pages()
        over = pages * self._page - budget  # the file itself is past the bound: the bound shrank
        if over > 0 and free:
            self.reclaim(min(free, -(-over // self._page)))

    def _disk_free(self) -> int:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def _fail(self, exc: sqlite3.Error) -> NoReturn:
        self.health.store_errors += 1
        self.health.last_error = str(exc)
        raise StoreError(f"outbox {self.path}: {exc}") from exc

    def _write(self, work: Callable[[sqlite3.Cursor], _T], ballast: bool = True, durable: bool = True) -> _T:
        """Run `work` in one write transaction, rolled back whole if it fails.

        With `ballast`, a full disk gives up the ballast for the room the write needs and the write is tried once
        more. Without `durable` the commit is not synced on its own (the next durable commit syncs it).
        """
        for last in (not ballast, True):
            cur = self._db.cursor()
            if not durable:
                self._db.execute("PRAGMA synchronous = NORMAL")
            try:
                cur.execute("BEGIN IMMEDIATE")
                result = work(cur)
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                full = isinstance(exc, sqlite3.Error) and _errname(exc).startswith(_FULL_ERRORS)
                if last or not full or not self._release_ballast():
                    raise
            else:
                return result
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous = FULL")
        raise AssertionError("unreachable")

    @staticmethod
    def _insert(cur: sqlite3.Cursor, entries: Sequence[Entry]) -> list[int]:
        now = time.time_ns() // 1_000_000
        cur.executemany(
            "INSERT INTO outbox (priority, topic, body, created_ms) VALUES (?, ?, ?, ?)",
            [(e.priority, e.topic, e.body, now) for e in entries],
        )
        # One writer inside BEGIN IMMEDIATE: AUTOINCREMENT numbered the rows consecutively up to here.
        last = int(cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0])
        return list(range(last - len(entries) + 1, last + 1))

    def _evict(self, need_bytes: int) -> None:
        """Delete the oldest telemetry until about `need_bytes` of pages are freed (or no telemetry is left)."""
        need = need_bytes / self._ratio()  # in the bytes `bytes` counts
        freed = 0
        while freed < need:
            rows = self._db.execute(
                "SELECT seq, LENGTH(body) + COALESCE(LENGTH(topic), 0) FROM outbox WHERE priority = ? "
                "ORDER BY seq LIMIT 500",
                (PRIORITY_TELEMETRY,),
            ).fetchall()
            if not rows:
                break
            take = []
            for seq, length in rows:
                take.append(int(seq))
                freed += int(length) + ROW_OVERHEAD
                if freed >= need:
                    break
            gone = self._delete_rows(take, "evict")
            if gone is None:
                return
            ev = Eviction(take[0], take[-1], len(take), gone)
            self.health.evictions.append(ev)
            self.health.evicted_rows += len(take)
            log.warning("outbox full: evicted %d rows, seq %d-%d", ev.count, ev.first_seq, ev.last_seq)

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

    def delete_sent(self, rows: Iterable[Row]) -> None:
        """Remove rows the broker acknowledged, as fetched: their sizes are known, so one statement does it.

        Not synced to disk on its own (the next commit syncs it): a delete lost to a power cut only means the rows
        are sent again, which at-least-once delivery allows. A delete the disk refuses is kept and tried again
        with the next one, or after the next commit: the rows were delivered, and must not wait for a reconnect
        to leave.
        """
        batch = self._undeleted + [(r.seq, len(r.body) + len(r.topic or "") + ROW_OVERHEAD) for r in rows]
        if not batch:
            return

        def work(cur: sqlite3.Cursor) -> None:
            if cur.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s, _ in batch]).rowcount != len(batch):
                raise _Recount

        try:
            self._write(work, durable=False)
        except _Recount:
            # Some were gone already (acknowledged twice): count bytes row by row instead.
            self._undeleted = []
            self.delete(s for s, _ in batch)
            return
        except sqlite3.Error as exc:
            self._undeleted = batch
            self.health.undeleted_rows = len(batch)
            self._delete_failed(exc, "delete acknowledged rows")
            return
        if self._undeleted:
            log.info("outbox %s: %d delivered rows deleted after the disk refused it", self.path, len(batch))
        self._undeleted = []
        self.health.undeleted_rows = 0
        self.bytes -= sum(size for _, size in batch)
        for listener in self._on_delete:
            listener()

    def _delete_rows(self, ids: list[int], what: str) -> int | None:
        """Delete rows in one transaction; the bytes freed, or None (counted and logged) if the store refused."""

        def work(cur: sqlite3.Cursor) -> int:
            freed = 0
            for s in ids:
                row = cur.execute(
                    "DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(body) + COALESCE(LENGTH(topic), 0)", (s,)
                ).fetchone()
                if row is not None:
                    freed += int(row[0]) + ROW_OVERHEAD
            return freed

        try:
            freed = self._write(work)
        except sqlite3.Error as exc:
            self._delete_failed(exc, what)
            return None
        self.bytes -= freed
        return freed

    def _delete_failed(self, exc: sqlite3.Error, what: str) -> None:
        """A refused delete leaves the rows (they are sent again); it is counted and logged."""
        self.health.store_errors += 1
        self.health.last_error = str(exc)
        log.error("outbox %s: cannot %s: %s", self.path, what, exc)

    def delete_upto(self, seq: int) -> int:
        """Remove every row with a sequence number up to `seq` (the platform's cumulative acknowledgement)."""
        ids = [int(r[0]) for r in self._db.execute("SELECT seq FROM outbox WHERE seq <= ?", (seq,)).fetchall()]
        self.delete(ids)
        return len(ids)

    def reclaim(self, pages: int = 2000) -> None:
        """Give up to `pages` free pages back to the file system (SQLite does not shrink a file by itself).

        In steps of the WAL's checkpoint interval, each checkpointed: every moved page goes through the WAL, which
        must stay inside its share of the bound. The WAL is not truncated: its blocks are the room the next
        delete needs on a full disk.
        """
        left = int(pages)
        try:
            while True:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if left <= 0 or self.free_pages() == 0:
                    break
                step = min(left, self._wal_pages)
                # The pragma steps once per page: execute() would free a single page; executescript runs it through.
                self._db.executescript(f"PRAGMA incremental_vacuum({step});")
                left -= step
        except sqlite3.Error as exc:
            log.warning("outbox %s: reclaim failed: %s", self.path, exc)

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

    def __enter__(self) -> Outbox:
        """Opened when made; `with` closes it, also when what follows its opening fails."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recorded_version(db: sqlite3.Connection) -> int | None:
    """The schema version a store records in its own `meta` table (every version after 1 does); None without."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row is not None and isinstance(row[0], int) else None
