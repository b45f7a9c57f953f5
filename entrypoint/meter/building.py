"""Making the usage store's files: connections, a new store built whole, a JSON file imported.

Helpers of `entrypoint.meter.opening`, which calls them holding the writers' lock:

* **Connections** (`connect`) refuse a hostile schema's side effects (``trusted_schema=OFF``),
  find damage early (``cell_size_check``), never checkpoint inside a commit, and turn text that
  is not UTF-8 into a database error.
* **Created whole** (`build`, `publish`): a new store is built in a temporary file beside the
  store (made with ``O_EXCL | O_NOFOLLOW``, mode 0600), fsync'd, and linked into place (``link``
  never replaces a file), so the store's path never names an empty or half-made database.
* **Imported once** (`import_json`): a JSON state file of an earlier version is parsed strictly
  (`entrypoint.meter.legacy`), built into a store, renamed over the path, and kept beside it as
  ``<name>.imported.json``; a running older meter (holding ``<name>.lock``) is refused instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from entrypoint.errors import ConfigurationError

from . import places
from .book import Bucket, meta_crc, name_crc, row_crc
from .database import SQLITE_ERRORS, WAL_LIMIT, damaged
from .schema import (
    APPLICATION_ID,
    DDL,
    FORMAT,
    SCHEMA_VERSION,
    SHARD_APPLICATION_ID,
    SHARD_DDL,
    SHARD_FORMAT,
)
from .store import Durability

if TYPE_CHECKING:
    from .legacy import LegacyState

__all__ = [
    "BUSY_TIMEOUT",
    "PAGE_SIZE",
    "build",
    "build_shard",
    "build_store",
    "connect",
    "import_json",
    "is_json",
    "open_lock",
    "publish",
    "remove_stale_builds",
    "shard_crc",
]

# How long SQLite itself waits for a lock it cannot have (recovery after a crash takes one
# briefly); writers normally never wait in SQLite (see store.py).
BUSY_TIMEOUT = 10.0
# 1 KiB pages: every add writes one page to the WAL, and the book is small. Measured
# (bench/meter_store.py): lower add latency under contention than the default 4 KiB.
PAGE_SIZE = 1024
_NEW = ".new-"


def connect(database: Path, *, create: bool = False) -> sqlite3.Connection:
    uri = database.as_uri() + ("?mode=rwc" if create else "?mode=rw")
    try:
        connection = sqlite3.connect(
            uri,
            uri=True,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            check_same_thread=False,  # UsageStore serialises its threads itself
            timeout=BUSY_TIMEOUT,
        )
    except SQLITE_ERRORS as exc:
        raise damaged(database, exc) from None
    connection.text_factory = _text
    try:
        # The check value of a bucket's key, for the add statements (schema.ADD).
        connection.create_function("meter_crc", 2, row_crc, deterministic=True)
        # A schema from a hostile file must not run functions with side effects.
        connection.execute("PRAGMA trusted_schema = OFF")
        connection.execute("PRAGMA cell_size_check = ON")  # damage found earlier, not later
        connection.execute("PRAGMA wal_autocheckpoint = 0")  # ours, outside the writers' lock
        connection.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
    except SQLITE_ERRORS as exc:
        connection.close()
        raise damaged(database, exc) from None
    return connection


def _text(raw: bytes) -> str:
    """TEXT values: UTF-8 or a database error (a flipped bit must not escape as UnicodeError)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise sqlite3.DataError("a text value is not UTF-8") from None


def is_json(database: Path) -> bool:
    # Only when SQLite said "not a database": no connection of this process has the file open,
    # so opening and closing a descriptor here cannot drop SQLite's POSIX locks.
    from .legacy import looks_like_json

    return looks_like_json(_read_regular(database, 64))


def _read_regular(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        places.check_file(path, os.fstat(fd))
        chunks, left = [], limit
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def import_json(
    database: Path, product_code: str, durability: Durability | None, clock: Callable[[], float]
) -> None:
    """Replace the JSON state file at ``database`` with a store holding the same usage."""
    from .legacy import MAX_BYTES, parse_state

    legacy_lock = database.with_name(database.name + ".lock")
    guard = None
    if os.path.lexists(legacy_lock):
        places.check_file(legacy_lock, os.lstat(legacy_lock))
        guard = os.open(legacy_lock, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if guard is not None:
            places.check_file(legacy_lock, os.fstat(guard))
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise places.refuse(
                    database,
                    "is a JSON state file still in use by an older meter",
                    "stop the older version first; the next start imports the file",
                ) from None
        state = parse_state(_read_regular(database, MAX_BYTES + 1), database)
        if state.product_code != product_code:
            raise ConfigurationError(
                f"the meter state file {database} belongs to product {state.product_code}, "
                f"not {product_code}",
                remedy="give each product its own store",
            )
        built = build_store(database, product_code, durability or "process", clock, state)
        kept = _free_name(database, ".imported.json")
        os.link(database, kept)  # the JSON file stays, under a new name
        built.replace(database)
        _fsync_directory(database.parent)
    finally:
        if guard is not None:
            os.close(guard)
    from entrypoint.logs import event

    event(
        logging.INFO,
        f"meter state file {database} imported into the usage store "
        f"({len(state.buckets)} bucket(s)); the JSON file is kept as {kept.name}",
        event="meter_state_imported",
        buckets=len(state.buckets),
    )


def _free_name(database: Path, suffix: str) -> Path:
    for n in range(1000):
        candidate = database.with_name(database.name + (suffix if n == 0 else f".{n}{suffix}"))
        if not os.path.lexists(candidate):
            return candidate
    raise places.refuse(database, "has too many imported copies beside it", "remove old ones")


def build(target: Path, initialise: Callable[[sqlite3.Connection], None]) -> Path:
    """A complete database for ``target`` (the store, or a shard), made by ``initialise`` in a
    temporary file beside it and fsync'd; returns the temporary file's path."""
    temporary = target.with_name(f".{target.name}{_NEW}{os.urandom(6).hex()}")
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(temporary, flags, 0o600))
    except OSError as exc:
        raise places.refuse(
            target,
            f"cannot be created: {exc.strerror or exc}",
            "give the meter a writable directory on a local volume (not a read-only one)",
        ) from None
    try:
        connection = connect(temporary)
        try:
            connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before the first table
            connection.execute("PRAGMA journal_mode = WAL")  # persistent: recorded in the file
            initialise(connection)
        finally:
            connection.close()  # the last connection: SQLite folds the WAL back and removes it
        fd = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except SQLITE_ERRORS as exc:
        _unlink_quietly(temporary)
        raise damaged(target, exc) from None
    except BaseException:
        _unlink_quietly(temporary)
        raise
    return temporary


def build_store(
    database: Path,
    product_code: str,
    durability: str,
    clock: Callable[[], float],
    state: LegacyState | None,
) -> Path:
    """A complete store (imported from ``state``, if given) in a temporary file."""
    return build(database, lambda c: _initialise(c, product_code, durability, int(clock()), state))


def _initialise(
    connection: sqlite3.Connection,
    product_code: str,
    durability: str,
    created: int,
    state: LegacyState | None,
) -> None:
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute("BEGIN IMMEDIATE")
    for statement in DDL.split(";"):
        if statement.strip():
            connection.execute(statement)
    instance = state.instance_id if state else os.urandom(16).hex()
    connection.execute(
        "INSERT INTO meta VALUES (1, ?, ?, ?, ?, ?, ?)",
        (
            FORMAT,
            product_code,
            instance,
            durability,
            created,
            meta_crc(product_code, instance, durability, created),
        ),
    )
    buckets: tuple[Bucket, ...] = state.buckets if state else ()
    connection.executemany(
        "INSERT INTO buckets VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        [
            (
                b.dimension,
                b.hour,
                b.micros,
                -b.micros,
                b.state,
                b.record_id,
                row_crc(b.dimension, b.hour),
            )
            for b in buckets
        ],
    )
    connection.executemany(
        "INSERT INTO dimensions VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(name, name_crc(name)) for name in sorted({b.dimension for b in buckets})],
    )
    connection.execute("COMMIT")


def build_shard(
    path: Path, instance_id: str, shard_id: str, closed: Sequence[tuple[str, int]]
) -> Path:
    """A complete, empty shard of the store whose instance is ``instance_id``, with the hours
    ``closed`` in the store when it is made, in a temporary file."""

    def initialise(connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA application_id = {SHARD_APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("BEGIN IMMEDIATE")
        for statement in SHARD_DDL.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(
            "INSERT INTO meta VALUES (1, ?, ?, ?, ?)",
            (SHARD_FORMAT, instance_id, shard_id, shard_crc(instance_id, shard_id)),
        )
        connection.executemany("INSERT INTO closed VALUES (?, ?)", closed)
        connection.execute("COMMIT")

    return build(path, initialise)


def shard_crc(instance_id: str, shard_id: str) -> int:
    """The check value of a shard's identity."""
    return zlib.crc32(f"{instance_id}\n{shard_id}".encode())


def open_lock(database: Path) -> int:
    """The writers' lock file of ``database`` (a regular file, never followed), opened."""
    lock = database.with_name(database.name + places.LOCK_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        places.check_file(lock, lock.lstat())  # name a planted link instead of ELOOP
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(lock, flags, 0o600)
    except OSError as exc:
        raise places.refuse(
            database,
            f"cannot have its lock file {lock.name}: {exc.strerror or exc}",
            "give the meter a writable directory on a local volume (not a read-only one)",
        ) from None
    try:
        places.check_file(lock, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def publish(temporary: Path, database: Path) -> None:
    """Put a built store at ``database``, never over anything already there."""
    try:
        os.link(temporary, database)
    except FileExistsError:
        pass  # another process (not holding our lock: an older version?) was first
    except OSError as exc:
        _unlink_quietly(temporary)
        raise places.refuse(
            database,
            f"cannot be created: {exc.strerror or exc}",
            "give the meter a writable directory",
        ) from None
    _unlink_quietly(temporary)
    _fsync_directory(database.parent)


def remove_stale_builds(database: Path) -> None:
    """Temporary stores and shards left by a process killed while building one (the caller
    holds the store's lock, which every build holds too)."""
    prefix = f".{database.name}"
    with contextlib.suppress(OSError), os.scandir(database.parent) as entries:
        for entry in entries:
            if (
                entry.name.startswith(prefix)
                and _NEW in entry.name
                and entry.is_file(follow_symlinks=False)
            ):
                for suffix in ("", *places.COMPANIONS):
                    _unlink_quietly(database.with_name(entry.name + suffix))


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
