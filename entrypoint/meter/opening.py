"""Opening the usage store: checked where it lives, created whole, imported once, verified.

`open_store` holds the writers' lock (``<db>-lock``, see `entrypoint.meter.store`) while it
examines, creates or imports the store (`entrypoint.meter.building`), so that every process of
the task sees either no store or a complete one. On every open it checks the file's SQLite
header, application id, schema version and exact schema, the identity row's check value, and
its product code; long-lived openers (`Meter`, ``meter serve``) also verify the whole file
(``verify``). An empty or truncated file at the store's path is damage, refused as such, never
mistaken for a new store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from entrypoint.errors import ConfigurationError, one_line

from . import places, shards
from .book import meta_crc
from .building import (
    build_store,
    connect,
    import_json,
    is_json,
    open_lock,
    publish,
    remove_stale_builds,
)
from .database import SQLITE_ERRORS, SYNCHRONOUS, damaged, refuse_if_forked
from .schema import APPLICATION_ID, FORMAT, SCHEMA_VERSION, expected_schema
from .store import Durability, UsageStore

__all__ = ["open_store"]


def open_store(
    path: Path | str,
    *,
    product_code: str,
    dimensions: Sequence[str] = (),
    durability: Durability | None = None,
    verify: bool = True,
    create: bool = True,
    shard: bool = False,
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
    lock_fd = open_lock(database)
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
    try:
        if verify:
            store.verify()
        store.declare(dimensions)
        if shard:  # a long-lived writer: its adds go to a shard of its own (shards.py)
            with store.locked():
                store.shard = shards.create(store, check_every=check_every)
    except BaseException:
        store.close()
        raise
    return store


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
    remove_stale_builds(database)
    info = places.check_names(database)
    if info is None and not create:
        raise places.refuse(database, "does not exist", "check the path (MARKETPLACE_METER_STORE)")
    if info is None:
        publish(build_store(database, product_code, durability or "process", clock, None), database)
        info = places.check_names(database)
    connection = connect(database)
    meta: tuple[str, str, str] | None = None
    try:
        meta = _identity(connection, database)
    except SQLITE_ERRORS as exc:
        connection.close()
        if "not a database" not in str(exc) or not is_json(database):
            raise damaged(database, exc) from None
    except BaseException:
        connection.close()
        raise
    if meta is None:  # a JSON state file of an earlier version
        import_json(database, product_code, durability, clock)
        info = places.check_names(database)
        connection = connect(database)
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
    connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS[stored]}")
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
