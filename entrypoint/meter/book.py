"""The meter's book-keeping rules: which hours are sealed, sent, forgotten or lost. Pure: no I/O.

The usage store (`entrypoint.meter.store`) applies these rules in SQL; they are stated here once,
with their reasons, and tested on their own.

Every bucket (one dimension, one hour) moves one way: ``open`` (adding) -> ``sealed`` (its
quantity frozen, about to be sent) -> ``sent`` (AWS answered with a MeteringRecordId). A bucket
AWS refused for good is ``refused``; one that became too old to send is ``expired``. Neither is
ever deleted: that usage stays visible (`Meter.lost`, ``meter status``) and was logged as lost.
AWS takes one record per dimension per hour per task and never changes it, so usage added to an
hour that is no longer open is carried into the next hour that is: it is billed an hour late,
rather than lost or refused.

Sent buckets are remembered for `KEEP_SENT` seconds, long enough that no usage can still arrive
for their hour (usage older than MeterUsage's 6 hours is refused when added).

Integrity: every stored row carries a CRC-32 of its dimension and hour, and its quantity twice
(``micros`` and its negation), so that a flipped bit in the file is found and named, never
billed; `verify_bucket` checks a row as SQLite returned it.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Literal, NamedTuple, get_args

from .hours import HOUR, MAX_AGE, MAX_MICROS, client_token, from_micros, hour_start

__all__ = [
    "KEEP_SENT",
    "LOST",
    "STATES",
    "UNSENT",
    "Bucket",
    "expire_before",
    "forget_before",
    "meta_crc",
    "name_crc",
    "row_crc",
    "seal_through",
    "verify_bucket",
]

KEEP_SENT = MAX_AGE + HOUR
State = Literal["open", "sealed", "sent", "refused", "expired"]
STATES: tuple[State, ...] = get_args(State)
UNSENT: tuple[State, ...] = ("open", "sealed")
LOST: tuple[State, ...] = ("refused", "expired")
# The last hour start a usage time can name (datetime's limit, 9999-12-31T23:00Z).
LAST_HOUR = 253_402_297_200
_MAX_TEXT = 600


class Bucket(NamedTuple):
    """One dimension's usage in one hour, as the store holds it."""

    dimension: str
    hour: int
    micros: int
    state: State
    record_id: str | None = None
    error: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.dimension, self.hour)

    @property
    def quantity(self) -> Decimal:
        return from_micros(self.micros)

    def token(self, instance_id: str, product_code: str) -> str:
        """The bucket's ClientToken: the same for every send, from every process, ever."""
        return client_token(instance_id, product_code, self.dimension, self.hour)


def seal_through(now: float, *, current_hour: bool) -> int:
    """The last hour start to seal at ``now``: every hour that has ended (its end ``hour + HOUR
    <= now``), and on shutdown the current hour too. Hours still in the future stay open."""
    return hour_start(now) if current_hour else hour_start(now) - HOUR


def expire_before(now: float) -> float:
    """Unsent hours starting before this are too old for MeterUsage ("more than six hours after
    events occur ... won't be accepted"); exactly 6 hours is still accepted."""
    return now - MAX_AGE


def forget_before(now: float) -> float:
    """Sent hours starting before this are forgotten: no usage can arrive for them any more."""
    return now - KEEP_SENT


def row_crc(dimension: str, hour: int) -> int:
    """The check value stored with a bucket's key."""
    return zlib.crc32(f"{dimension}\n{hour}".encode())


def name_crc(name: str) -> int:
    """The check value stored with a declared dimension."""
    return zlib.crc32(name.encode())


def meta_crc(product_code: str, instance_id: str, durability: str, created: int) -> int:
    """The check value stored with the store's identity."""
    return zlib.crc32(f"{product_code}\n{instance_id}\n{durability}\n{created}".encode())


def verify_bucket(row: tuple[object, ...]) -> Bucket:
    """A row ``(dimension, hour, micros, negated, state, record_id, error, crc)`` as a `Bucket`,
    or `ValueError` naming what is wrong with it (a damaged store)."""
    dimension, hour, micros, negated, state, record_id, error, crc = row
    if not isinstance(dimension, str) or not 1 <= len(dimension) <= 255:
        raise ValueError("a bucket's dimension is not 1-255 characters")
    if type(hour) is not int or not 0 <= hour <= LAST_HOUR or hour % HOUR:
        raise ValueError(f"the bucket of {dimension!r} has an hour that is not an hour")
    if type(micros) is not int or not 0 <= micros <= MAX_MICROS:
        raise ValueError(f"the bucket of {dimension!r} has a quantity out of range")
    if type(negated) is not int or negated != -micros:
        raise ValueError(f"the bucket of {dimension!r} has a quantity that fails its check")
    if crc != row_crc(dimension, hour):
        raise ValueError(f"the bucket of {dimension!r} fails its check value")
    if state not in STATES:
        raise ValueError(f"the bucket of {dimension!r} has an unknown state")
    if (state == "sent") != isinstance(record_id, str) or (
        isinstance(record_id, str) and not 1 <= len(record_id) <= 128
    ):
        raise ValueError(f"the bucket of {dimension!r} has a record id that fails its state")
    if error is not None and (not isinstance(error, str) or len(error) > _MAX_TEXT):
        raise ValueError(f"the bucket of {dimension!r} has a malformed error")
    return Bucket(
        dimension,
        hour,
        micros,
        state,
        record_id if isinstance(record_id, str) else None,
        error if isinstance(error, str) else None,
    )
