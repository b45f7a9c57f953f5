"""The task's usage store: one SQLite database that every process and thread of the task shares.

Open one with `open_store` (`entrypoint.meter.opening`: where it may live, how it is created,
checked and imported). What a `UsageStore` guarantees:

* **An add that returned is on disk and counted once.** Each `add` is one SQLite transaction
  (``BEGIN IMMEDIATE`` ... ``COMMIT``) in write-ahead-log mode: when it returns the increment is
  in the WAL file, so the death of any process (SIGKILL, the OOM killer) loses nothing, and a
  process killed mid-transaction leaves nothing of it (sqlite.org/atomiccommit.html). With
  ``durability="machine"`` every commit is also fsync'd (``PRAGMA synchronous=FULL``), against a
  machine crash or power loss; the default, ``synchronous=NORMAL``, keeps the database consistent
  after one but may lose the last commits (sqlite.org/pragma.html#pragma_synchronous).
* **Writers wait in the kernel, not in SQLite's busy handler.** SQLite's busy handler retries a
  locked database after sleeps of milliseconds; here every write first takes an exclusive
  ``flock`` on ``<db>-lock``, so writers queue in the kernel and the next one wakes as soon as the
  lock is released, and SQLite's own write lock is always free when asked for. The kernel drops
  the lock of a process that dies.
* **Checkpoints stay out of the adds.** Automatic checkpoints (which run inside the commit that
  triggers them, while its writer holds the lock, and fsync twice) are off. The task's sender
  copies the WAL back with a PASSIVE checkpoint (which never blocks writers) every
  `CHECKPOINT_INTERVAL` (`entrypoint.meter.sender`), so the WAL stays a few megabytes at tens of
  thousands of adds a second and is reused in place; a writer does it itself only when the WAL
  has grown past `WAL_LIMIT` (a task with no sender running). Measured (bench/meter_store.py):
  checkpoints made by every writer, in its adds, made one add in a hundred wait for fsyncs.
* **Nothing is read on trust.** Rows are verified as they are read (`book.verify_bucket`), and a
  damaged, truncated or foreign file is a `ConfigurationError` naming the file, never an empty
  book.
* **Forks.** A connection must not be used across ``fork()`` (sqlite.org/howtocorrupt.html, 2.6),
  and SQLite's per-process lock records, inherited by a child, describe the parent's locks: a
  child whose parent had a store open can therefore use no store at all. Such a child is refused
  with a `UsageError` (open the store, or start the `Meter`, in each worker after the fork); the
  inherited connections are left untouched, never closed, so the parent's locks stay as they
  are.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

from entrypoint.errors import ConfigurationError, UsageError, one_line

from .book import (
    LOST,
    UNSENT,
    Bucket,
    expire_before,
    forget_before,
    name_crc,
    row_crc,
    seal_through,
    verify_bucket,
)
from .hours import HOUR, MAX_QUANTITY, format_quantity, from_micros, hour_text
from .schema import ADD, BUCKET_COLUMNS

__all__ = [
    "CHECKPOINT_INTERVAL",
    "SQLITE_ERRORS",
    "WAL_LIMIT",
    "Durability",
    "Member",
    "UsageStore",
    "damaged",
]

Durability = Literal["process", "machine"]
T = TypeVar("T")
# Any writer folds the WAL back once it is this large (65,536 pages of 1 KiB: each add appends
# one); PRAGMA journal_size_limit truncates it to this size when SQLite restarts it, so a WAL
# that normal checkpoints keep small is never truncated and regrown.
WAL_LIMIT = 64 * 1024 * 1024
# The task's sender folds the WAL back this often (seconds).
CHECKPOINT_INTERVAL = 0.5
# Usage is carried at most this many hours forward (past sealed, sent or lost hours); beyond it
# the store's hours are not what this package writes.
_MAX_CARRY = 48
# What a damaged file can make sqlite3 raise: its own errors, and a UnicodeDecodeError when
# SQLite's error message quotes damaged bytes (sqlite3 decodes messages as UTF-8).
SQLITE_ERRORS = (sqlite3.Error, UnicodeDecodeError)
_GRAVEYARD: list[object] = []  # connections and descriptors inherited across fork: never closed
_OPEN: weakref.WeakSet[UsageStore] = weakref.WeakSet()  # this process's open stores
_INHERITED = False  # this process was forked while its parent had a store open


def _after_fork_in_child() -> None:
    global _INHERITED  # noqa: PLW0603 - process-wide by nature: what fork() left behind
    stores = [s for s in _OPEN if not s._closed]
    _INHERITED = _INHERITED or bool(stores)
    for store in stores:
        _GRAVEYARD.extend((store._db, store._lock_fd))  # kept referenced: never closed here


os.register_at_fork(after_in_child=_after_fork_in_child)


def refuse_if_forked() -> None:
    """`UsageError` in a child forked while its parent had a store open (see the docstring)."""
    if _INHERITED:
        raise UsageError(
            "this process was forked while its parent had the meter store open, so SQLite's "
            "locks cannot be trusted here",
            remedy="open the store (start the Meter) in each worker after it is forked, not "
            "before (gunicorn: in post_fork, not at import with preload_app)",
        )


class Member(NamedTuple):
    """A process of the task that meters (``meter``) or sends (``serve``), as the store knows it:
    its id, and until when it counts as alive unless heard from again (its own lease length
    after it was last heard from)."""

    id: str
    kind: str
    alive_until: float


def damaged(path: Path | str, exc: BaseException) -> ConfigurationError:
    """The error for a store SQLite cannot use: damaged, truncated, not a database, or on a
    volume that cannot be written (read-only, full, gone)."""
    text = (
        "SQLite reported damage it could not describe"
        if isinstance(exc, UnicodeDecodeError)
        else one_line(exc, 160)
    )
    if isinstance(exc, sqlite3.OperationalError) or "unable to open" in text:
        return ConfigurationError(
            f"the meter store {one_line(path, 200)} cannot be used: {text}",
            remedy="give the meter a writable directory on a local volume, with free space",
        )
    return ConfigurationError(
        f"the meter store {one_line(path, 200)} is damaged: {text}",
        remedy="it holds usage not yet reported: restore it from a copy, or move it aside to "
        "start afresh (which loses that usage)",
    )


class UsageStore:
    """One process's connection to the task's store (made by `open_store`); thread-safe."""

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        lock_fd: int,
        *,
        product_code: str,
        instance_id: str,
        durability: Durability,
        check_every: int,
    ) -> None:
        self.path = path
        self.product_code = product_code
        self.instance_id = instance_id
        self.durability = durability
        self._db = connection
        self._lock_fd = lock_fd
        self._thread_lock = threading.Lock()
        self._pid = os.getpid()
        self._check_every = max(1, check_every)
        self._since_check = 0
        self._closed = False
        _OPEN.add(self)

    # -- plumbing -------------------------------------------------------------------------------
    def _current(self) -> sqlite3.Connection:
        if self._closed:
            raise UsageError("the meter store is closed")
        if os.getpid() != self._pid:
            refuse_if_forked()
            raise UsageError("the meter store was opened by another process")  # not reached
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the writers' kernel lock."""
        with self._thread_lock:
            db = self._current()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except SQLITE_ERRORS as exc:
                raise damaged(self.path, exc) from None
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._committed(db)

    def _committed(self, db: sqlite3.Connection) -> None:
        """After a commit, outside the writers' lock: now and then, fold a large WAL back."""
        self._since_check += 1
        if self._since_check >= self._check_every:
            self._since_check = 0
            self._checkpoint_if_large(db)

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._thread_lock:
            db = self._current()
            try:
                return query(db)
            except SQLITE_ERRORS as exc:
                raise damaged(self.path, exc) from None

    def _checkpoint_if_large(self, db: sqlite3.Connection) -> None:
        try:
            size = self.path.with_name(self.path.name + "-wal").stat().st_size
        except OSError:
            return
        if size > WAL_LIMIT:
            self._fold(db)

    def _fold(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except SQLITE_ERRORS as exc:
            raise damaged(self.path, exc) from None

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking writers (PASSIVE)."""
        self._read(lambda db: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())

    def close(self) -> None:
        """Close this process's connection (the last one to close folds the WAL back)."""
        with self._thread_lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() != self._pid:
                _GRAVEYARD.extend((self._db, self._lock_fd))
                return
            try:
                self._db.close()
            finally:
                os.close(self._lock_fd)

    # -- usage ----------------------------------------------------------------------------------
    def add(self, dimension: str, micros: int, hour: int) -> int:
        """Add ``micros`` to ``dimension`` in ``hour``, or in the next open hour when that one is
        sealed, sent or lost; return the hour credited. Durable when it returns. `UsageError` if
        the hour's total would exceed MeterUsage's maximum.

        The hot path: one statement, which SQLite runs as a transaction of its own (autocommit),
        under the writers' lock; when the hour is not open it changes nothing, and the next
        hour is tried the same way."""
        with self._thread_lock:
            db = self._current()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                for _ in range(_MAX_CARRY):
                    values = (dimension, hour, micros, -micros, row_crc(dimension, hour))
                    if db.execute(ADD, values).rowcount:
                        break
                    hour += HOUR
                else:
                    raise damaged(self.path, ValueError(f"{dimension} has no open hour to add to"))
            except sqlite3.IntegrityError:
                raise self._over(db, dimension, micros, hour) from None
            except SQLITE_ERRORS as exc:
                raise damaged(self.path, exc) from None
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._committed(db)
        return hour

    def _over(self, db: sqlite3.Connection, dimension: str, micros: int, hour: int) -> Exception:
        row = db.execute(
            "SELECT micros FROM buckets WHERE dimension = ? AND hour = ?", (dimension, hour)
        ).fetchone()
        if row is None:
            return damaged(self.path, ValueError("a new bucket was refused"))
        total = format_quantity(from_micros(int(row[0]) + micros))
        return UsageError(
            f"{dimension} for {hour_text(hour)} would total {total}, over MeterUsage's "
            f"{MAX_QUANTITY}"
        )

    def declare(self, dimensions: Sequence[str]) -> None:
        """Record the product's pricing dimensions (the ones `add` may name)."""
        if not dimensions:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO dimensions (name, crc) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(name, name_crc(name)) for name in dimensions],
            )

    def declared(self) -> tuple[str, ...]:
        """The dimensions any process of the task declared, verified."""
        rows = self._read(lambda db: db.execute("SELECT name, crc FROM dimensions").fetchall())
        for name, crc in rows:
            if not isinstance(name, str) or crc != name_crc(name):
                raise damaged(self.path, ValueError("a declared dimension fails its check value"))
        return tuple(sorted(name for name, _ in rows))

    def buckets(self, states: Sequence[str]) -> list[Bucket]:
        """The buckets in ``states``, oldest first, each verified."""
        marks = ", ".join("?" * len(states))
        rows = self._read(
            lambda db: db.execute(
                f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE state IN ({marks}) "  # noqa: S608 - placeholders only
                "ORDER BY hour, dimension",
                tuple(states),
            ).fetchall()
        )
        return [self._verified(row) for row in rows]

    def pending(self) -> list[Bucket]:
        return self.buckets(UNSENT)

    def lost(self) -> list[Bucket]:
        return self.buckets(LOST)

    def _verified(self, row: tuple[object, ...]) -> Bucket:
        try:
            return verify_bucket(row)
        except ValueError as exc:
            raise damaged(self.path, exc) from None

    def verify(self) -> None:
        """The whole store: SQLite's structural check, then every row's own checks."""

        def quick_check(db: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]

        problems = self._read(quick_check)
        if problems != ["ok"]:
            raise damaged(self.path, ValueError("; ".join(problems[:3])))
        self.buckets(("open", "sealed", "sent", "refused", "expired"))
        self.declared()

    # -- sending (the lease holder) -------------------------------------------------------------
    def expire(self, now: float) -> list[Bucket]:
        """Mark unsent buckets too old for MeterUsage as expired; return them."""
        limit = expire_before(now)
        with self._write() as db:
            rows = db.execute(
                f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE state IN ('open', 'sealed') "  # noqa: S608 - constant columns
                "AND hour < ? ORDER BY hour, dimension",
                (limit,),
            ).fetchall()
            expired = [self._verified(row) for row in rows]
            db.execute(
                "UPDATE buckets SET state = 'expired', error = ? "
                "WHERE state IN ('open', 'sealed') AND hour < ?",
                ("not reported within MeterUsage's 6 hours", limit),
            )
        return expired

    def seal(self, now: float, *, current_hour: bool) -> list[Bucket]:
        """Freeze every open hour that has ended (and the current one, if ``current_hour``);
        return every sealed bucket, oldest first. A sealed quantity never changes again."""
        with self._write() as db:
            db.execute(
                "UPDATE buckets SET state = 'sealed' WHERE state = 'open' AND hour <= ?",
                (seal_through(now, current_hour=current_hour),),
            )
        return self.buckets(("sealed",))

    def mark_sent(self, bucket: Bucket, record_id: str) -> None:
        """Record AWS's MeteringRecordId for a sealed bucket (a no-op if it was already)."""
        with self._write() as db:
            db.execute(
                "UPDATE buckets SET state = 'sent', record_id = ?, error = NULL "
                "WHERE dimension = ? AND hour = ? AND state = 'sealed' AND micros = ?",
                (one_line(record_id, 128), bucket.dimension, bucket.hour, bucket.micros),
            )

    def mark_refused(self, bucket: Bucket, reason: str) -> None:
        """Keep a sealed bucket AWS refused for good, with the reason, out of the sending."""
        with self._write() as db:
            db.execute(
                "UPDATE buckets SET state = 'refused', error = ? "
                "WHERE dimension = ? AND hour = ? AND state = 'sealed'",
                (one_line(reason, 600), bucket.dimension, bucket.hour),
            )

    def forget(self, now: float) -> None:
        """Delete sent buckets too old for any usage to arrive for their hour."""
        with self._write() as db:
            db.execute(
                "DELETE FROM buckets WHERE state = 'sent' AND hour < ?", (forget_before(now),)
            )

    # -- the lease and the members --------------------------------------------------------------
    def claim(self, member: str, kind: str, now: float, ttl: float) -> str | None:
        """Record that ``member`` is alive for ``ttl`` seconds more, and give it the sender's lease
        for as long if the lease is free, expired, or its own. Returns the holder afterwards."""
        now_ms, ttl_ms = int(now * 1000), int(ttl * 1000)
        with self._write() as db:
            db.execute(
                "INSERT INTO members (id, kind, alive_until) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until",
                (member, kind, now_ms + ttl_ms),
            )
            db.execute("DELETE FROM members WHERE alive_until < ?", (now_ms - 24 * 3_600_000,))
            row = db.execute("SELECT holder, expires FROM lease WHERE id = 1").fetchone()
            if row is not None and row[0] not in {None, member} and row[1] > now_ms:
                return str(row[0])
            db.execute(
                "INSERT INTO lease (id, holder, expires) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, "
                "expires = excluded.expires",
                (member, now_ms + ttl_ms),
            )
            return member

    def holder(self, now: float) -> str | None:
        """The member holding an unexpired lease, if any."""
        row = self._read(
            lambda db: db.execute("SELECT holder, expires FROM lease WHERE id = 1").fetchone()
        )
        if row is None or row[0] is None or row[1] <= int(now * 1000):
            return None
        return str(row[0])

    def release(self, member: str) -> None:
        """Give up the lease if ``member`` holds it, so another process takes over at once."""
        with self._write() as db:
            db.execute("UPDATE lease SET holder = NULL, expires = 0 WHERE holder = ?", (member,))

    def leave(self, member: str) -> None:
        """``member`` stops: release its lease and forget it."""
        with self._write() as db:
            db.execute("UPDATE lease SET holder = NULL, expires = 0 WHERE holder = ?", (member,))
            db.execute("DELETE FROM members WHERE id = ?", (member,))

    def members(self, now: float) -> list[Member]:
        """The members that count as alive at ``now``."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT id, kind, alive_until FROM members WHERE alive_until > ? ORDER BY id",
                (int(now * 1000),),
            ).fetchall()
        )
        return [Member(str(i), str(k), int(h) / 1000) for i, k, h in rows]
