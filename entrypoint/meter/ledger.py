"""The store and its shards as one book: closing hours, folding shards in, what is pending.

Only the task's sender closes hours (`close_hours`), holding the store's lock for the whole round
(so rounds, and shards folded in at a clean close, never interleave):

1. The keys to close are listed: each dimension and hour up to the last hour to close that has
   usage, in the store (an open bucket) or in a shard.
2. Every shard closes those keys (one transaction, under its own lock: an add in flight there
   finishes first; afterwards an add for one of them is carried) and its buckets are read: those
   of the keys can never change again. A shard nobody owns any more (`shards.owner_gone`) is
   read whole.
3. One transaction of the store adds what was read to its own buckets, records the shards read
   whole as merged, and seals the keys: their quantities are frozen.
4. What was folded in is deleted from the shards; shards read whole are removed.

Killed anywhere, the next round does the same again and counts nothing twice: usage is only
added to a bucket of the store that is still open (after step 3 the keys are sealed), and a shard
recorded as merged is only removed, never read again. A shard's bucket that step 3 already
counted and step 4 did not delete is therefore skipped, also by `pending`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .book import UNSENT, Bucket, forget_before, row_crc, seal_through
from .shards import Shard, listed, open_shard, owner_gone, remove
from .store import UsageStore

__all__ = ["close_hours", "collect", "fold_own", "pending"]

_FOLD = (
    "INSERT INTO buckets (dimension, hour, micros, negated, crc) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (dimension, hour) DO UPDATE SET micros = micros + excluded.micros, "
    "negated = negated + excluded.negated WHERE state = 'open'"
)


def _merged(store: UsageStore) -> set[str]:
    return set(store.read(lambda db: [row[0] for row in db.execute("SELECT shard FROM merged")]))


@contextmanager
def _shards(store: UsageStore, *, tidy: bool) -> Iterator[list[tuple[Shard, int | None]]]:
    """Every shard of the store not merged yet: (shard, its owner lock when nobody owns it, if
    ``tidy``), opened; closed afterwards (this process's own is lent, not closed). The caller
    holds the store's lock; with ``tidy``, merged shards nobody owns are removed."""
    merged = _merged(store)
    opened: list[tuple[Shard, int | None]] = []
    try:
        for shard_id, path in listed(store.path):
            own = store.shard if store.shard is not None and store.shard.id == shard_id else None
            gone = owner_gone(path) if tidy and own is None else None
            if shard_id in merged:
                if gone is not None:
                    remove(path)
                    os.close(gone)
                continue
            try:
                opened.append((own or open_shard(store, shard_id), gone))
            except BaseException:
                if gone is not None:
                    os.close(gone)
                raise
        yield opened
    finally:
        for shard, gone in opened:
            if not shard.own:
                shard.close()
            if gone is not None:
                os.close(gone)


def close_hours(store: UsageStore, now: float, *, current_hour: bool) -> list[Bucket]:
    """Close every hour that has ended (and the current one, if ``current_hour``) in the store
    and its shards, folding the shards' usage in (see the module docstring); return every
    sealed bucket, oldest first."""
    with store.locked():
        _fold(store, seal_through(now, current_hour=current_hour), forget_before(now))
    return store.buckets(("sealed",))


def collect(store: UsageStore) -> None:
    """Fold in and remove the shards of processes that are gone (between rounds)."""
    with store.locked():
        _fold(store, None, None)


def _fold(store: UsageStore, through: int | None, cutoff: float | None) -> None:
    with _shards(store, tidy=True) as opened:
        keys: set[tuple[str, int]] = set()
        if through is not None:  # 1. what to close
            keys = {(b.dimension, b.hour) for b in store.buckets(("open",)) if b.hour <= through}
            for shard, _ in opened:
                keys |= {(b.dimension, b.hour) for b in shard.buckets() if b.hour <= through}
        read: list[tuple[Shard, bool, list[Bucket]]] = []
        for shard, gone in opened:  # 2. closed in every shard, and read
            whole = gone is not None
            if through is None and not whole:
                continue
            with shard.locked(), shard.transaction() as sdb:
                buckets = shard.close_keys(sdb, sorted(keys))
            read.append((shard, whole, [b for b in buckets if whole or b.key in keys]))
        with store.transaction() as db:  # 3. folded in, and sealed
            for _, _whole, buckets in read:
                db.executemany(_FOLD, [_values(b) for b in buckets])
            db.executemany(
                "INSERT INTO merged (shard) VALUES (?) ON CONFLICT DO NOTHING",
                [(shard.id,) for shard, whole, _ in read if whole],
            )
            db.executemany(
                "UPDATE buckets SET state = 'sealed' "
                "WHERE dimension = ? AND hour = ? AND state = 'open'",
                sorted(keys),
            )
        for shard, whole, buckets in read:  # 4. and out of the shards
            if whole:
                remove(shard.path)
                continue
            with shard.write() as sdb:
                sdb.executemany(
                    "DELETE FROM buckets WHERE dimension = ? AND hour = ?",
                    [b.key for b in buckets],
                )
                if cutoff is not None:  # no add is that old: its closed hours are forgotten
                    sdb.execute("DELETE FROM closed WHERE hour < ?", (cutoff,))
    removed = _merged(store) - {shard_id for shard_id, _ in listed(store.path)}
    if removed:  # forget what was merged once its files are gone
        with store.transaction() as db:
            db.executemany("DELETE FROM merged WHERE shard = ?", [(r,) for r in sorted(removed)])


def _values(bucket: Bucket) -> tuple[str, int, int, int, int]:
    return (
        bucket.dimension,
        bucket.hour,
        bucket.micros,
        -bucket.micros,
        row_crc(bucket.dimension, bucket.hour),
    )


def fold_own(store: UsageStore) -> None:
    """At a clean close: fold this process's own shard into the store and remove it."""
    shard = store.shard
    if shard is None:
        return
    with store.locked():
        with shard.locked(), shard.transaction() as sdb:
            buckets = shard.close_keys(sdb, [])
        with store.transaction() as db:
            db.executemany(_FOLD, [_values(b) for b in buckets])
            db.execute("INSERT INTO merged (shard) VALUES (?) ON CONFLICT DO NOTHING", (shard.id,))
        store.shard = None
        shard.close()
        remove(shard.path)
        with store.transaction() as db:
            db.execute("DELETE FROM merged WHERE shard = ?", (shard.id,))


def pending(store: UsageStore) -> list[Bucket]:
    """Usage of the whole task not yet reported: the store's open and sealed buckets and every
    shard's, summed per dimension and hour, oldest first (read under the store's lock, so that
    no round folds shards in meanwhile)."""
    with store.locked():
        return _pending(store)


def _pending(store: UsageStore) -> list[Bucket]:
    book = {(b.dimension, b.hour): b for b in store.buckets(UNSENT)}
    closed = {
        (str(d), int(h))
        for d, h in store.read(
            lambda db: db.execute(
                "SELECT dimension, hour FROM buckets WHERE state != 'open'"
            ).fetchall()
        )
    }
    with _shards(store, tidy=False) as opened:
        for shard, _ in opened:
            for bucket in shard.buckets():
                key = (bucket.dimension, bucket.hour)
                if key in closed:
                    continue  # already counted in a closed bucket (see the module docstring)
                known = book.get(key)
                book[key] = bucket._replace(micros=bucket.micros + (known.micros if known else 0))
    return sorted(book.values(), key=lambda b: (b.hour, b.dimension))
