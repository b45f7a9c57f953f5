"""The task's usage store: one SQLite database that every process and thread of the task shares.

Open one with `open_store` (`entrypoint.meter.opening`: where it may live, how it is created,
checked and imported). Its files' common guarantees (durable writes, the writers' kernel lock,
checkpoints, forks) are `entrypoint.meter.database`'s. What the store holds:

* **The book.** Usage per dimension and hour, in buckets that move one way (`entrypoint.meter.
  book`): open, sealed (frozen), sent; or refused, expired (kept, listed as lost). Adds from
  short-lived processes (``meter add``) go straight into the store; a long-lived process
  (`Meter`) adds to a shard of its own (`entrypoint.meter.shards`), so that no add waits for
  another process, and the task's sender folds the shards into the store as hours close
  (`entrypoint.meter.ledger`).
* **Closed hours.** A dimension's hour whose bucket is no longer open is closed, here and, once
  the sender closes it, in every shard: an add for it is carried into the next open hour.
* **The lease and the members**: which process sends (`claim`), and which are alive.
* **Nothing is read on trust.** Rows are verified as they are read (`book.verify_bucket`), and a
  damaged, truncated or foreign file is a `ConfigurationError` naming the file, never an empty
  book.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from entrypoint.errors import one_line

from .book import LOST, UNSENT, Bucket, expire_before, forget_before, name_crc, verify_bucket
from .database import DatabaseFile, damaged
from .schema import ADD, BUCKET_COLUMNS

if TYPE_CHECKING:
    from .shards import Shard

__all__ = ["Durability", "Member", "UsageStore"]

Durability = Literal["process", "machine"]


class Member(NamedTuple):
    """A process of the task that meters (``meter``) or sends (``serve``), as the store knows it:
    its id, and until when it counts as alive unless heard from again (its own lease length
    after it was last heard from)."""

    id: str
    kind: str
    alive_until: float


class UsageStore(DatabaseFile):
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
        super().__init__(path, connection, lock_fd, check_every=check_every)
        self.product_code = product_code
        self.instance_id = instance_id
        self.durability = durability
        self.shard: Shard | None = None  # this process's own, if it has one

    # -- usage ----------------------------------------------------------------------------------
    def add(self, dimension: str, micros: int, hour: int) -> int:
        """Add ``micros`` to ``dimension`` in ``hour``, or in the first open hour after it when
        that one is closed; return the hour credited. Durable when it returns. `UsageError` if
        the hour's total would exceed MeterUsage's maximum.

        The hot path: one statement, which SQLite runs as a transaction of its own (autocommit)
        under the writers' lock: of this process's shard if it has one (no other process ever
        waits for it), else of the store."""
        if self.shard is not None:
            return self.shard.add(dimension, micros, hour)
        return self.add_with(ADD, dimension, micros, hour)

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
        super().close()

    def declare(self, dimensions: Sequence[str]) -> None:
        """Record the product's pricing dimensions (the ones `add` may name)."""
        if not dimensions:
            return
        with self.write() as db:
            db.executemany(
                "INSERT INTO dimensions (name, crc) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(name, name_crc(name)) for name in dimensions],
            )

    def declared(self) -> tuple[str, ...]:
        """The dimensions any process of the task declared, verified."""
        rows = self.read(lambda db: db.execute("SELECT name, crc FROM dimensions").fetchall())
        for name, crc in rows:
            if not isinstance(name, str) or crc != name_crc(name):
                raise damaged(self.path, ValueError("a declared dimension fails its check value"))
        return tuple(sorted(name for name, _ in rows))

    def buckets(self, states: Sequence[str]) -> list[Bucket]:
        """The buckets in ``states``, oldest first, each verified."""
        marks = ", ".join("?" * len(states))
        rows = self.read(
            lambda db: db.execute(
                f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE state IN ({marks}) "  # noqa: S608 - placeholders only
                "ORDER BY hour, dimension",
                tuple(states),
            ).fetchall()
        )
        return [self._verified(row) for row in rows]

    def pending(self) -> list[Bucket]:
        """The store's own unsent buckets (the shards' are `ledger.pending`)."""
        return self.buckets(UNSENT)

    def lost(self) -> list[Bucket]:
        return self.buckets(LOST)

    def closed_keys(self) -> list[tuple[str, int]]:
        """Every (dimension, hour) whose bucket is no longer open."""
        rows = self.read(
            lambda db: db.execute(
                "SELECT dimension, hour FROM buckets WHERE state != 'open'"
            ).fetchall()
        )
        return [(str(d), int(h)) for d, h in rows]

    def _verified(self, row: tuple[object, ...]) -> Bucket:
        try:
            return verify_bucket(row)
        except ValueError as exc:
            raise damaged(self.path, exc) from None

    def verify(self) -> None:
        """The whole store: SQLite's structural check, then every row's own checks."""

        def quick_check(db: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]

        problems = self.read(quick_check)
        if problems != ["ok"]:
            raise damaged(self.path, ValueError("; ".join(problems[:3])))
        self.buckets(("open", "sealed", "sent", "refused", "expired"))
        self.declared()

    # -- sending (the lease holder) -------------------------------------------------------------
    def expire(self, now: float) -> list[Bucket]:
        """Mark unsent buckets too old for MeterUsage as expired; return them."""
        limit = expire_before(now)
        with self.write() as db:
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

    def mark_sent(self, bucket: Bucket, record_id: str) -> None:
        """Record AWS's MeteringRecordId for a sealed bucket (a no-op if it was already)."""
        with self.write() as db:
            db.execute(
                "UPDATE buckets SET state = 'sent', record_id = ?, error = NULL "
                "WHERE dimension = ? AND hour = ? AND state = 'sealed' AND micros = ?",
                (one_line(record_id, 128), bucket.dimension, bucket.hour, bucket.micros),
            )

    def mark_refused(self, bucket: Bucket, reason: str) -> None:
        """Keep a sealed bucket AWS refused for good, with the reason, out of the sending."""
        with self.write() as db:
            db.execute(
                "UPDATE buckets SET state = 'refused', error = ? "
                "WHERE dimension = ? AND hour = ? AND state = 'sealed'",
                (one_line(reason, 600), bucket.dimension, bucket.hour),
            )

    def forget(self, now: float) -> None:
        """Delete sent buckets too old for any usage to arrive for their hour."""
        with self.write() as db:
            db.execute(
                "DELETE FROM buckets WHERE state = 'sent' AND hour < ?", (forget_before(now),)
            )

    # -- the lease and the members --------------------------------------------------------------
    def claim(self, member: str, kind: str, now: float, ttl: float) -> str | None:
        """Record that ``member`` is alive for ``ttl`` seconds more, and give it the sender's lease
        for as long if the lease is free, expired, or its own. Returns the holder afterwards."""
        now_ms, ttl_ms = int(now * 1000), int(ttl * 1000)
        with self.write() as db:
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
        row = self.read(
            lambda db: db.execute("SELECT holder, expires FROM lease WHERE id = 1").fetchone()
        )
        if row is None or row[0] is None or row[1] <= int(now * 1000):
            return None
        return str(row[0])

    def release(self, member: str) -> None:
        """Give up the lease if ``member`` holds it, so another process takes over at once."""
        with self.write() as db:
            db.execute("UPDATE lease SET holder = NULL, expires = 0 WHERE holder = ?", (member,))

    def leave(self, member: str) -> None:
        """``member`` stops: release its lease and forget it."""
        with self.write() as db:
            db.execute("UPDATE lease SET holder = NULL, expires = 0 WHERE holder = ?", (member,))
            db.execute("DELETE FROM members WHERE id = ?", (member,))

    def members(self, now: float) -> list[Member]:
        """The members that count as alive at ``now``."""
        rows = self.read(
            lambda db: db.execute(
                "SELECT id, kind, alive_until FROM members WHERE alive_until > ? ORDER BY id",
                (int(now * 1000),),
            ).fetchall()
        )
        return [Member(str(i), str(k), int(h) / 1000) for i, k, h in rows]
