"""The usage store's SQLite schema: every stored value constrained, and nothing else allowed in.

Tables are STRICT (SQLite refuses a value of the wrong type: sqlite.org/stricttables.html) and
carry CHECK constraints for what MeterUsage can take: dimensions of 1-255 characters, hours that
are integers on the hour, quantities as integer millionths from 0 to 9999999999.999999 (finite by
construction, never negative), states from a fixed list. Times of the lease and the members are
integer milliseconds. SQLite checks constraints when a row is written; `entrypoint.meter.book.
verify_bucket` checks rows again when they are read, with the check values the rows carry, since
``PRAGMA integrity_check`` verifies the file's structure but not CHECK constraints.

`expected_schema` is what ``sqlite_schema`` of a store (or a shard) must hold, exactly: a file
with another table, a trigger or a view was not made by this package and is refused before it is
used.

An add for a dimension and hour that is closed (in the store, a bucket no longer open; in a
shard, a row of ``closed``) is carried into the first hour after it that is not: the add
statements find that hour themselves (`ADD`, `SHARD_ADD`), in the same transaction.
"""

from __future__ import annotations

import sqlite3
from functools import cache

__all__ = [
    "ADD",
    "APPLICATION_ID",
    "BUCKET_COLUMNS",
    "DDL",
    "FORMAT",
    "SCHEMA_VERSION",
    "SHARD_ADD",
    "SHARD_APPLICATION_ID",
    "SHARD_DDL",
    "SHARD_FORMAT",
    "expected_schema",
]

FORMAT = "marketplace-entrypoint-meter-store"
SCHEMA_VERSION = 1
# PRAGMA application_id: a 32-bit number naming the file's format ("metr", "mets" in ASCII).
APPLICATION_ID = 0x6D657472
SHARD_FORMAT = "marketplace-entrypoint-meter-shard"
SHARD_APPLICATION_ID = 0x6D657473

DDL = """
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    format TEXT NOT NULL CHECK (format = 'marketplace-entrypoint-meter-store'),
    product_code TEXT NOT NULL CHECK (length(product_code) BETWEEN 1 AND 255),
    instance_id TEXT NOT NULL CHECK (length(instance_id) BETWEEN 1 AND 200),
    durability TEXT NOT NULL CHECK (durability IN ('process', 'machine')),
    created INTEGER NOT NULL CHECK (created >= 0),
    crc INTEGER NOT NULL
) STRICT;
CREATE TABLE dimensions (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
    crc INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE buckets (
    dimension TEXT NOT NULL CHECK (length(dimension) BETWEEN 1 AND 255),
    hour INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 253402297200 AND hour % 3600 = 0),
    micros INTEGER NOT NULL CHECK (micros BETWEEN 0 AND 9999999999999999),
    negated INTEGER NOT NULL CHECK (negated = -micros),
    state TEXT NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'sealed', 'sent', 'refused', 'expired')),
    record_id TEXT CHECK (record_id IS NULL OR length(record_id) BETWEEN 1 AND 128),
    error TEXT CHECK (error IS NULL OR length(error) <= 600),
    crc INTEGER NOT NULL,
    PRIMARY KEY (dimension, hour),
    CHECK ((state = 'sent') = (record_id IS NOT NULL))
) STRICT, WITHOUT ROWID;
CREATE TABLE lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT CHECK (holder IS NULL OR length(holder) BETWEEN 1 AND 300),
    expires INTEGER NOT NULL CHECK (expires >= 0)
) STRICT;
CREATE TABLE members (
    id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 300),
    kind TEXT NOT NULL CHECK (kind IN ('meter', 'serve')),
    alive_until INTEGER NOT NULL CHECK (alive_until >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE merged (
    shard TEXT PRIMARY KEY CHECK (length(shard) = 16)
) STRICT, WITHOUT ROWID;
"""

SHARD_DDL = """
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    format TEXT NOT NULL CHECK (format = 'marketplace-entrypoint-meter-shard'),
    instance_id TEXT NOT NULL CHECK (length(instance_id) BETWEEN 1 AND 200),
    shard TEXT NOT NULL CHECK (length(shard) = 16),
    crc INTEGER NOT NULL
) STRICT;
CREATE TABLE buckets (
    dimension TEXT NOT NULL CHECK (length(dimension) BETWEEN 1 AND 255),
    hour INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 253402297200 AND hour % 3600 = 0),
    micros INTEGER NOT NULL CHECK (micros BETWEEN 0 AND 9999999999999999),
    negated INTEGER NOT NULL CHECK (negated = -micros),
    crc INTEGER NOT NULL,
    PRIMARY KEY (dimension, hour)
) STRICT, WITHOUT ROWID;
CREATE TABLE closed (
    dimension TEXT NOT NULL CHECK (length(dimension) BETWEEN 1 AND 255),
    hour INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 253402297200 AND hour % 3600 = 0),
    PRIMARY KEY (dimension, hour)
) STRICT, WITHOUT ROWID;
"""

BUCKET_COLUMNS = "dimension, hour, micros, negated, state, record_id, error, crc"


# One add (parameters: dimension, hour, micros), returning the hour credited: a new bucket, or
# more usage in an open one, in the given hour or, when that one is closed, in the first hour
# after it that is not (the candidates are the hour itself and the hour after each closed one).
# meter_crc is the check value of `book.row_crc`, registered on every connection.
def _add(closed: str, guard: str) -> str:
    return (
        "INSERT INTO buckets (dimension, hour, micros, negated, crc) "  # noqa: S608 - constants only
        "SELECT ?1, h, ?3, -?3, meter_crc(?1, h) FROM (SELECT min(c) AS h FROM ("
        f"SELECT ?2 AS c UNION ALL SELECT hour + 3600 FROM ({closed}) WHERE hour >= ?2) "
        f"WHERE c NOT IN ({closed})) WHERE true "
        "ON CONFLICT (dimension, hour) DO UPDATE SET micros = micros + excluded.micros, "
        f"negated = negated + excluded.negated{guard} RETURNING hour"
    )


ADD = _add(
    "SELECT hour FROM buckets WHERE dimension = ?1 AND state != 'open'", " WHERE state = 'open'"
)
SHARD_ADD = _add("SELECT hour FROM closed WHERE dimension = ?1", "")


@cache
def expected_schema(ddl: str = DDL) -> frozenset[tuple[str, str, str, str | None]]:
    """``(type, name, tbl_name, sql)`` of every object of ``ddl`` (a store's, or a shard's), as
    SQLite records them."""
    memory = sqlite3.connect(":memory:")
    try:
        memory.executescript(ddl)
        rows = memory.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema").fetchall()
    finally:
        memory.close()
    return frozenset(rows)
