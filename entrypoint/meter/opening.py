"""Opening the usage store: checked where it lives, created whole, imported once, verified.

`open_store` holds the writers' lock (``<db>-lock``, see `entrypoint.meter.store`) while it
examines, creates or imports the store, so that every process of the task sees either no store
or a complete one:

* **Created whole.** A new store is built in a temporary file beside it (schema, identity,
  WAL mode), fsync'd, then linked into place (``link`` never replaces a file). The store's path
  therefore never names an empty or half-made database: an empty or truncated file there is
  damage, refused as such, never mistaken for a new store.
* **Imported once.** A JSON state file of an earlier version at the store's path is parsed
  strictly (`entrypoint.meter.legacy`), turned into a store in a temporary file, and renamed over
  the path; the JSON file is kept beside it as ``<name>.imported.json``. A running older meter
  (holding its ``<name>.lock``) is refused instead.
* **Checked on every open.** The file's SQLite header, application id, schema version and exact
  schema, the identity row's check value, and its product code. Long-lived openers (`Meter`,
  ``meter serve``) also verify the whole file (``verify``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from entrypoint.errors import ConfigurationError, one_line

from . import places
from .book import Bucket, meta_crc, name_crc, row_crc
from .schema import APPLICATION_ID, DDL, FORMAT, SCHEMA_VERSION, expected_schema
from .store import (
    SQLITE_ERRORS,
    WAL_LIMIT,
    Durability,
    UsageStore,
    damaged,
    refuse_if_forked,
)

if TYPE_CHECKING:
    from .legacy import LegacyState

__all__ = ["BUSY_TIMEOUT", "open_store"]

# How long SQLite itself waits for a lock it cannot have (recovery after a crash takes one
# briefly); writers normally never wait in SQLite (see store.py).
BUSY_TIMEOUT = 10.0
_SYNCHRONOUS = {"process": "NORMAL", "machine": "FULL"}
PAGE_SIZE = 1024
_NEW = ".new-"


def open_store(
    path: Path | str,
    *,
    product_code: str,
    dimensions: Sequence[str] = (),
    durability: Durability | None = None,
    verify: bool = True,
    create: bool = True,
    check_every: int = 256,
    clock: Callable[[], float] = time.time,
) -> UsageStore:
    """The task's store at ``path``, created (or imported from a JSON state file) if needed.

    ``dimensions`` are declared in it; ``durability`` "machine" makes every commit fsync'd from
    now on for every process (the stricter setting wins; the default for a new store is
    "process"). Without ``create``, a missing store is an error. `ConfigurationError` (exit 78)
    for a store that cannot be used where it is, that belongs to another product, or that is
    damaged.
    """

    refuse_if_forked()
    database = places.locate(path)
    places.check_directory(database)
    lock_fd = _open_lock(database)
    try:
        with _locked(lock_fd):
            connection, meta = _open_checked(
                database, product_code, durability, clock, create=create
            )
            store = UsageStore(
                database,
                connection,
                lock_fd,
                product_code=product_code,
                instance_id=meta[0],
                durability=meta[1],
                check_every=check_every,
            )
    except BaseException:
        os.close(lock_fd)
        raise
    if verify:
        store.verify()
    store.declare(dimensions)
    return store


def _open_lock(database: Path) -> int:
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


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _open_checked(
    database: Path,
    product_code: str,
    durability: Durability | None,
    clock: Callable[[], float],
    *,
    create: bool,
) -> tuple[sqlite3.Connection, tuple[str, Durability]]:
    _remove_stale_builds(database)
    info = places.check_names(database)
    if info is None and not create:
        raise places.refuse(database, "does not exist", "check the path (MARKETPLACE_METER_STORE)")
    if info is None:
        _publish(_build(database, product_code, durability or "process", clock, None), database)
        info = places.check_names(database)
    connection = _connect(database)
    meta: tuple[str, str, str] | None = None
    try:
        meta = _identity(connection, database)
    except SQLITE_ERRORS as exc:
        connection.close()
        if "not a database" not in str(exc) or not _is_json(database):
            raise damaged(database, exc) from None
    except BaseException:
        connection.close()
        raise
    if meta is None:  # a JSON state file of an earlier version
        _import(database, product_code, durability, clock)
        info = places.check_names(database)
        connection = _connect(database)
    try:
        meta = meta or _identity(connection, database)
        stored = _settle(
            connection,
            database,
            meta=meta,
            product_code=product_code,
            durability=durability,
            info=info,
        )
    except SQLITE_ERRORS as exc:
        connection.close()
        raise damaged(database, exc) from None
    except BaseException:
        connection.close()
        raise
    return connection, (meta[0], stored)


def _settle(
    connection: sqlite3.Connection,
    database: Path,
    *,
    meta: tuple[str, str, str],
    product_code: str,
    durability: Durability | None,
    info: os.stat_result | None,
) -> Durability:
    """Check an identified store against this opener; set its durability; return it."""
    if meta[1] != product_code:
        raise ConfigurationError(
            f"the meter store {database} belongs to product {one_line(meta[1], 80)}, "
            f"not {product_code}",
            remedy="give each product its own store",
        )
    stored: Durability = "machine" if meta[2] == "machine" else "process"
    if durability == "machine" and stored == "process":
        _set_durability(connection, meta, "machine")
        stored = "machine"
    connection.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[stored]}")
    if not os.access(database, os.R_OK | os.W_OK):
        raise places.refuse(
            database,
            "cannot be written by this process",
            "run every container of the task as the user that owns the store",
        )
    after = database.lstat()
    if info is None or (after.st_dev, after.st_ino) != (info.st_dev, info.st_ino):
        raise places.refuse(
            database, "was replaced while it was opened", "check what else writes there"
        )
    return stored


def _connect(database: Path, *, create: bool = False) -> sqlite3.Connection:
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


def _identity(connection: sqlite3.Connection, database: Path) -> tuple[str, str, str]:
    """(instance_id, product_code, durability) of a store whose format checks out."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if application_id != APPLICATION_ID:
        raise damaged(database, ValueError("it is an SQLite database, but not a meter store"))
    if version != SCHEMA_VERSION:
        raise damaged(database, ValueError(f"it has schema version {version}, not 1"))
    schema = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema").fetchall()
    if frozenset(schema) != expected_schema():
        raise damaged(database, ValueError("its schema is not the meter's"))
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        raise damaged(database, ValueError(f"it is in journal mode {mode}, not WAL"))
    row = connection.execute(
        "SELECT format, product_code, instance_id, durability, created, crc FROM meta"
    ).fetchall()
    if len(row) != 1:
        raise damaged(database, ValueError("it has no identity"))
    fmt, product, instance, durability, created, crc = row[0]
    if fmt != FORMAT or crc != meta_crc(product, instance, durability, created):
        raise damaged(database, ValueError("its identity fails its check value"))
    return str(instance), str(product), str(durability)


def _set_durability(connection: sqlite3.Connection, meta: tuple[str, str, str], to: str) -> None:
    instance, product, _ = meta
    created = connection.execute("SELECT created FROM meta").fetchone()[0]
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(
        "UPDATE meta SET durability = ?, crc = ?",
        (to, meta_crc(product, instance, to, created)),
    )
    connection.execute("COMMIT")


def _is_json(database: Path) -> bool:
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


def _import(
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
        built = _build(database, product_code, durability or "process", clock, state)
        kept = _free_name(database, ".imported.json")
        os.link(database, kept)  # the JSON file stays, under a new name
        built.replace(database)
        _fsync_directory(database.parent)
    finally:
        if guard is not None:
            os.close(guard)
    from entrypoint.logs import event

    event(
        20,
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


def _build(
    database: Path,
    product_code: str,
    durability: str,
    clock: Callable[[], float],
    state: LegacyState | None,
) -> Path:
    """A complete store in a temporary file beside ``database``; returns its path."""
    temporary = database.with_name(f".{database.name}{_NEW}{os.urandom(6).hex()}")
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(temporary, flags, 0o600))
    except OSError as exc:
        raise places.refuse(
            database,
            f"cannot be created: {exc.strerror or exc}",
            "give the meter a writable directory on a local volume (not a read-only one)",
        ) from None
    try:
        connection = _connect(temporary)
        try:
            _initialise(connection, product_code, durability, int(clock()), state)
        finally:
            connection.close()  # the last connection: SQLite folds the WAL back and removes it
        fd = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except SQLITE_ERRORS as exc:
        _unlink_quietly(temporary)
        raise damaged(database, exc) from None
    except BaseException:
        _unlink_quietly(temporary)
        raise
    return temporary


def _initialise(
    connection: sqlite3.Connection,
    product_code: str,
    durability: str,
    created: int,
    state: LegacyState | None,
) -> None:
    # 1 KiB pages: every add writes one page to the WAL, and the book is small. Measured
    # (bench/meter_store.py): lower add latency under contention than the default 4 KiB.
    connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    connection.execute("PRAGMA journal_mode = WAL")  # persistent: recorded in the file
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


def _publish(temporary: Path, database: Path) -> None:
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


def _remove_stale_builds(database: Path) -> None:
    """Temporary stores left by a process killed while building one (we hold the lock)."""
    prefix = f".{database.name}{_NEW}"
    with contextlib.suppress(OSError), os.scandir(database.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
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
