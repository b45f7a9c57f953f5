"""Shards: a long-lived process's own file of the store, so that no add waits for another process.

Measured (bench/meter_store.py): with one lock for every writer, an add waits whenever the
process holding the lock is descheduled, and eight busy processes on two cores made one add in a
hundred wait milliseconds; each on a file of its own, they did not. So a `Meter` adds to a shard
of its own, ``<store>-shard-<16 hex digits>``, a database with the store's guarantees
(`entrypoint.meter.database`): its table ``closed`` lists the dimensions and hours the task's
sender closed, and an add for one of them is carried into the first hour after it that is not.
The sender folds shards into the store as hours close (`entrypoint.meter.ledger`).

Ownership: the owner holds an exclusive ``flock`` on ``<shard>-owner`` for as long as it lives;
the kernel releases it when the owner dies, whatever container the owner ran in (the lock is on
the shared volume's file). A shard whose owner lock can be taken belongs to nobody alive, and
the sender folds all of it into the store and removes it.

A shard is made whole before its name appears (built in a temporary file, linked into place),
while holding the store's lock, with every hour closed in the store: so every shard the sender
lists under that lock knows what the store closed, or will in the same round.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from entrypoint.errors import ConfigurationError, one_line

from . import places
from .book import Bucket, verify_bucket
from .building import build_shard, connect, open_lock, publish, shard_crc
from .database import SQLITE_ERRORS, SYNCHRONOUS, DatabaseFile, damaged
from .schema import SCHEMA_VERSION, SHARD_ADD, SHARD_APPLICATION_ID, SHARD_DDL, SHARD_FORMAT
from .schema import expected_schema as schema_of
from .store import UsageStore

__all__ = ["OWNER_SUFFIX", "SHARD_INFIX", "Shard", "create", "listed", "open_shard", "remove"]

SHARD_INFIX = "-shard-"
OWNER_SUFFIX = "-owner"
_ID = re.compile(r"[0-9a-f]{16}")
_ROWS = "SELECT dimension, hour, micros, negated, crc FROM buckets"


class Shard(DatabaseFile):
    """One shard of the store: this process's own (``owner_fd`` set), or another's."""

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        lock_fd: int,
        *,
        shard_id: str,
        owner_fd: int | None,
        check_every: int,
    ) -> None:
        super().__init__(path, connection, lock_fd, check_every=check_every)
        self.id = shard_id
        self._owner_fd = owner_fd

    @property
    def own(self) -> bool:
        return self._owner_fd is not None

    def add(self, dimension: str, micros: int, hour: int) -> int:
        """Add to this shard (see `UsageStore.add`); only its owner does."""
        return self.add_with(SHARD_ADD, dimension, micros, hour)

    def close_keys(self, db: sqlite3.Connection, keys: Iterable[tuple[str, int]]) -> list[Bucket]:
        """Close these dimensions and hours in this shard (in a transaction, holding its lock);
        return its buckets, each verified (state ``open``)."""
        db.executemany("INSERT INTO closed VALUES (?, ?) ON CONFLICT DO NOTHING", keys)
        return [self._verified(row) for row in db.execute(_ROWS).fetchall()]

    def buckets(self) -> list[Bucket]:
        """Every bucket of this shard, verified."""
        return self.read(lambda db: [self._verified(row) for row in db.execute(_ROWS)])

    def _verified(self, row: tuple[object, ...]) -> Bucket:
        dimension, hour, micros, negated, crc = row
        try:
            return verify_bucket((dimension, hour, micros, negated, "open", None, None, crc))
        except ValueError as exc:
            raise damaged(self.path, exc) from None

    def close(self) -> None:
        super().close()
        owner, self._owner_fd = self._owner_fd, None
        if owner is not None:
            os.close(owner)  # releases the owner lock: the shard belongs to nobody now


def path_of(database: Path, shard_id: str) -> Path:
    return database.with_name(f"{database.name}{SHARD_INFIX}{shard_id}")


def listed(database: Path) -> list[tuple[str, Path]]:
    """The shards beside ``database``: (id, path), by name (each is checked when opened)."""
    prefix = database.name + SHARD_INFIX
    found = []
    try:
        with os.scandir(database.parent) as entries:
            for entry in entries:
                rest = entry.name[len(prefix) :] if entry.name.startswith(prefix) else ""
                if _ID.fullmatch(rest):
                    found.append((rest, Path(entry.path)))
    except OSError as exc:
        raise places.refuse(
            database,
            f"cannot list its directory: {exc.strerror or exc}",
            "give the meter a directory it can read",
        ) from None
    return sorted(found)


def _owner_path(path: Path) -> Path:
    return path.with_name(path.name + OWNER_SUFFIX)


def create(store: UsageStore, *, check_every: int) -> Shard:
    """This process's own new shard of ``store``, knowing every hour closed in it; the caller
    holds the store's lock (so that no hour closes before the shard appears)."""
    database = store.path
    shard_id = os.urandom(8).hex()
    path = path_of(database, shard_id)
    owner_path = _owner_path(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        owner = os.open(owner_path, flags, 0o600)
    except OSError as exc:
        raise places.refuse(
            database, f"cannot have a shard: {exc.strerror or exc}", "give it a writable directory"
        ) from None
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # before the shard's name appears
        publish(build_shard(path, store.instance_id, shard_id, store.closed_keys()), path)
        return _opened(store, path, shard_id, owner, check_every)
    except BaseException:
        os.close(owner)
        remove(path)
        raise


def open_shard(store: UsageStore, shard_id: str) -> Shard:
    """Another process's shard of ``store`` (or a dead one's), checked like the store itself."""
    return _opened(store, path_of(store.path, shard_id), shard_id, None, 256)


def _opened(
    store: UsageStore, path: Path, shard_id: str, owner: int | None, check_every: int
) -> Shard:
    instance_id = store.instance_id
    places.check_names(path)
    with contextlib.suppress(FileNotFoundError):
        places.check_file(_owner_path(path), _owner_path(path).lstat())
    lock = open_lock(path)
    try:
        connection = connect(path)
    except BaseException:
        os.close(lock)
        raise
    try:
        _check_identity(connection, path, shard_id, instance_id)
        connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS[store.durability]}")
    except SQLITE_ERRORS as exc:
        connection.close()
        os.close(lock)
        raise damaged(path, exc) from None
    except BaseException:
        connection.close()
        os.close(lock)
        raise
    return Shard(path, connection, lock, shard_id=shard_id, owner_fd=owner, check_every=check_every)


def _check_identity(
    connection: sqlite3.Connection, path: Path, shard_id: str, instance_id: str
) -> None:
    if connection.execute("PRAGMA application_id").fetchone()[0] != SHARD_APPLICATION_ID:
        raise damaged(path, ValueError("it is not a shard of the meter store"))
    if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        raise damaged(path, ValueError("it has another schema version"))
    schema = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema").fetchall()
    if frozenset(schema) != schema_of(SHARD_DDL):
        raise damaged(path, ValueError("its schema is not the meter's"))
    if str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        raise damaged(path, ValueError("it is not in WAL mode"))
    rows = connection.execute("SELECT format, instance_id, shard, crc FROM meta").fetchall()
    if len(rows) != 1 or rows[0][0] != SHARD_FORMAT or rows[0][2] != shard_id:
        raise damaged(path, ValueError("its identity is not a shard's"))
    if rows[0][1] != instance_id or rows[0][3] != shard_crc(instance_id, shard_id):
        raise damaged(path, ValueError("it belongs to another store, or fails its check value"))


def owner_gone(path: Path) -> int | None:
    """If the shard at ``path`` belongs to nobody alive: its owner lock, taken (the caller closes
    it after removing the shard). None while its owner lives."""
    owner_path = _owner_path(path)
    try:
        fd = os.open(owner_path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:  # no owner file: nobody owns it (a stand-in descriptor to close)
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigurationError(
            f"the meter store's shard owner {one_line(owner_path, 200)} cannot be opened: "
            f"{exc.strerror or exc}",
            remedy="remove anything but the meter's own files from the store's directory",
        ) from None
    try:
        places.check_file(owner_path, os.fstat(fd))
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove(path: Path) -> None:
    """Remove a shard and its companions; the owner file last."""
    for suffix in ("", *places.COMPANIONS, places.LOCK_SUFFIX, OWNER_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
