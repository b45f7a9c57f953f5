"""One SQLite file of the usage store with its writers' lock: the store itself, or a shard.

What every file of the store guarantees (`DatabaseFile`):

* **A write that returned is on disk and happened once.** Each write is one SQLite transaction
  in write-ahead-log mode: when it returns it is in the WAL file, so the death of any process
  (SIGKILL, the OOM killer) loses nothing, and a process killed mid-transaction leaves nothing of
  it (sqlite.org/atomiccommit.html). With ``durability="machine"`` every commit is also fsync'd
  (``PRAGMA synchronous=FULL``), against a machine crash or power loss; the default,
  ``synchronous=NORMAL``, keeps the database consistent after one but may lose the last commits
  (sqlite.org/pragma.html#pragma_synchronous).
* **Writers wait in the kernel, not in SQLite's busy handler.** SQLite's busy handler retries a
  locked database after sleeps of milliseconds; here every write first takes an exclusive
  ``flock`` on ``<file>-lock``, so writers queue in the kernel and the next one wakes as soon as
  the lock is released, and SQLite's own write lock is always free when asked for. The kernel
  drops the lock of a process that dies.
* **Checkpoints stay out of the writes.** Automatic checkpoints (which run inside the commit that
  triggers them, while its writer holds the lock, and fsync twice) are off. The task's sender
  copies the WALs back with PASSIVE checkpoints (which never block writers) every
  `CHECKPOINT_INTERVAL`; a writer does it itself only when a WAL has grown past `WAL_LIMIT` (no
  sender running). Measured (bench/meter_store.py): checkpoints made by every writer, in its
  adds, made one add in a hundred wait for fsyncs.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from entrypoint.errors import ConfigurationError, UsageError, one_line

from .hours import MAX_QUANTITY, format_quantity, from_micros, hour_text

__all__ = [
    "CHECKPOINT_INTERVAL",
    "SQLITE_ERRORS",
    "SYNCHRONOUS",
    "WAL_LIMIT",
    "DatabaseFile",
    "damaged",
    "refuse_if_forked",
]

T = TypeVar("T")
# Any writer folds a WAL back once it is this large (65,536 pages of 1 KiB: each add appends
# one); PRAGMA journal_size_limit truncates it to this size when SQLite restarts it, so a WAL
# that normal checkpoints keep small is never truncated and regrown.
WAL_LIMIT = 64 * 1024 * 1024
# The task's sender folds the WALs back this often (seconds).
CHECKPOINT_INTERVAL = 0.5
# PRAGMA synchronous for each durability (see the module docstring).
SYNCHRONOUS = {"process": "NORMAL", "machine": "FULL"}
# What a damaged file can make sqlite3 raise: its own errors, and a UnicodeDecodeError when
# SQLite's error message quotes damaged bytes (sqlite3 decodes messages as UTF-8).
SQLITE_ERRORS = (sqlite3.Error, UnicodeDecodeError)
_GRAVEYARD: list[object] = []  # connections and descriptors inherited across fork: never closed
_OPEN: weakref.WeakSet[DatabaseFile] = weakref.WeakSet()  # this process's open files
_INHERITED = False  # this process was forked while its parent had a store open


def _after_fork_in_child() -> None:
    global _INHERITED  # noqa: PLW0603 - process-wide by nature: what fork() left behind
    files = [f for f in _OPEN if not f.closed]
    _INHERITED = _INHERITED or bool(files)
    _GRAVEYARD.extend(file.abandon() for file in files)  # kept referenced: never closed here


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


class DatabaseFile:
    """A connection to one file of the store and its writers' lock; thread-safe."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, lock_fd: int, *, check_every: int
    ) -> None:
        self.path = path
        self._db = connection
        self._lock_fd = lock_fd
        self._thread_lock = threading.RLock()
        self._pid = os.getpid()
        self._check_every = max(1, check_every)
        self._since_check = 0
        self.closed = False
        _OPEN.add(self)

    def _current(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            refuse_if_forked()
            raise UsageError("the meter store was opened by another process")  # not reached
        if self.closed:
            raise UsageError("the meter store is closed")
        return self._db

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """This file's writers' lock (and this object's threads' lock), held for a sequence of
        transactions (`transaction`)."""
        with self._thread_lock:
            db = self._current()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield db
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._committed()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; call it holding `locked`."""
        db = self._current()
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

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the writers' lock."""
        with self.locked(), self.transaction() as db:
            yield db

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._thread_lock:
            db = self._current()
            try:
                return query(db)
            except SQLITE_ERRORS as exc:
                raise damaged(self.path, exc) from None

    def _committed(self) -> None:
        """After a write, outside the writers' lock: now and then, fold a large WAL back."""
        self._since_check += 1
        if self._since_check < self._check_every:
            return
        self._since_check = 0
        try:
            size = self.path.with_name(self.path.name + "-wal").stat().st_size
        except OSError:
            return
        if size > WAL_LIMIT:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking writers (PASSIVE)."""
        self.read(lambda db: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())

    def add_with(self, statement: str, dimension: str, micros: int, hour: int) -> int:
        """Run an add ``statement`` (parameters: dimension, hour, micros; it returns the hour
        credited) as one autocommit transaction under the writers' lock: the hot path."""
        with self._thread_lock:
            db = self._current()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                credited = db.execute(statement, (dimension, hour, micros)).fetchall()
            except sqlite3.IntegrityError:
                raise self._over(db, dimension, micros, hour) from None
            except SQLITE_ERRORS as exc:
                raise damaged(self.path, exc) from None
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._committed()
        if len(credited) != 1 or type(credited[0][0]) is not int:
            raise damaged(self.path, ValueError(f"an add to {dimension} changed no hour"))
        return int(credited[0][0])

    def _over(self, db: sqlite3.Connection, dimension: str, micros: int, hour: int) -> Exception:
        row = db.execute(
            "SELECT hour, micros FROM buckets WHERE dimension = ? AND hour >= ? "
            "ORDER BY hour DESC LIMIT 1",
            (dimension, hour),
        ).fetchone()
        if row is None:
            return damaged(self.path, ValueError("a new bucket was refused"))
        total = format_quantity(from_micros(int(row[1]) + micros))
        return UsageError(
            f"{dimension} for {hour_text(int(row[0]))} would total {total}, over MeterUsage's "
            f"{MAX_QUANTITY}"
        )

    def abandon(self) -> tuple[sqlite3.Connection, int]:
        """Mark closed without closing (a forked child): what must stay referenced."""
        self.closed = True
        return self._db, self._lock_fd

    def close(self) -> None:
        """Close this process's connection (the last one to close folds the WAL back)."""
        with self._thread_lock:
            if self.closed:
                return
            self.closed = True
            if os.getpid() != self._pid:
                _GRAVEYARD.append((self._db, self._lock_fd))
                return
            try:
                self._db.close()
            finally:
                os.close(self._lock_fd)
