"""The meter's book: usage per dimension and hour, and where each hour stands. Pure: no I/O.

Every bucket (one dimension, one hour) moves one way: ``open`` (adding) -> ``sealed`` (its
quantity frozen, about to be sent; persisted before the first attempt) -> ``sent`` (AWS answered
with a MeteringRecordId). A bucket that AWS refused for good, or that became too old to send, is
dropped. AWS takes one record per dimension per hour per task and never changes it, so usage
added to an hour that is already sealed is carried into the next hour that is still open: it is
billed, an hour late, rather than lost or refused.

Sent buckets are remembered for `KEEP_SENT` seconds, long enough that no usage can still arrive
for their hour (usage older than MeterUsage's 6 hours is refused at `add`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from entrypoint.errors import UsageError

from .hours import HOUR, MAX_AGE, MAX_QUANTITY, client_token, format_quantity, hour_text

__all__ = ["KEEP_SENT", "Bucket", "UsageBook"]

KEEP_SENT = MAX_AGE + HOUR
State = Literal["open", "sealed", "sent"]


@dataclass
class Bucket:
    dimension: str
    hour: int
    quantity: Decimal
    token: str
    state: State = "open"
    record_id: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.dimension, self.hour)

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "hour": self.hour,
            "quantity": format_quantity(self.quantity),
            "token": self.token,
            "state": self.state,
            "record_id": self.record_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bucket:
        state = data["state"]
        if state not in {"open", "sealed", "sent"}:
            raise ValueError(f"unknown bucket state {state!r}")
        return cls(
            dimension=str(data["dimension"]),
            hour=int(data["hour"]),
            quantity=Decimal(str(data["quantity"])),
            token=str(data["token"]),
            state=state,
            record_id=data.get("record_id"),
        )


class UsageBook:
    """The buckets of one product as metered by one task (``instance_id``)."""

    def __init__(self, product_code: str, instance_id: str, buckets: Iterable[Bucket] = ()) -> None:
        self.product_code = product_code
        self.instance_id = instance_id
        self.buckets: dict[tuple[str, int], Bucket] = {b.key: b for b in buckets}

    def add(self, dimension: str, quantity: Decimal, hour: int) -> int:
        """Add usage to ``hour``, or to the next open hour if ``hour`` is sealed; return the hour
        credited. `UsageError` if the hour's total would exceed MeterUsage's maximum."""
        while (existing := self.buckets.get((dimension, hour))) is not None and (
            existing.state != "open"
        ):
            hour += HOUR
        bucket = existing or Bucket(
            dimension=dimension,
            hour=hour,
            quantity=Decimal(0),
            token=client_token(self.instance_id, self.product_code, dimension, hour),
        )
        total = bucket.quantity + quantity
        if total > MAX_QUANTITY:
            raise UsageError(
                f"{dimension} for {hour_text(hour)} would total {format_quantity(total)}, over "
                f"MeterUsage's {MAX_QUANTITY}"
            )
        bucket.quantity = total
        self.buckets[bucket.key] = bucket
        return hour

    def undo(self, dimension: str, quantity: Decimal, hour: int) -> None:
        """Take back an `add` whose save failed, if its bucket is still open."""
        bucket = self.buckets.get((dimension, hour))
        if bucket is None or bucket.state != "open":
            return
        bucket.quantity -= quantity
        if bucket.quantity <= 0:
            del self.buckets[bucket.key]

    def seal(self, now: float, *, current_hour: bool) -> list[Bucket]:
        """Seal every open bucket whose hour has ended (and the current hour's, on shutdown);
        return every sealed bucket, oldest first. Hours still in the future stay open."""
        for bucket in self.buckets.values():
            ended = bucket.hour + HOUR <= now
            if bucket.state == "open" and (ended or (current_hour and bucket.hour <= now)):
                bucket.state = "sealed"
        return sorted(
            (b for b in self.buckets.values() if b.state == "sealed"),
            key=lambda b: (b.hour, b.dimension),
        )

    def expire(self, now: float) -> list[Bucket]:
        """Drop and return unsent buckets too old for MeterUsage; forget old sent ones."""
        expired = [b for b in self.buckets.values() if b.state != "sent" and now - b.hour > MAX_AGE]
        for bucket in expired:
            del self.buckets[bucket.key]
        for bucket in [b for b in self.buckets.values() if b.state == "sent"]:
            if now - bucket.hour > KEEP_SENT:
                del self.buckets[bucket.key]
        return expired

    def mark_sent(self, bucket: Bucket, record_id: str) -> None:
        bucket.state = "sent"
        bucket.record_id = record_id

    def drop(self, bucket: Bucket) -> None:
        self.buckets.pop(bucket.key, None)

    def unsent(self) -> list[Bucket]:
        return sorted(
            (b for b in self.buckets.values() if b.state != "sent"),
            key=lambda b: (b.hour, b.dimension),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "product_code": self.product_code,
            "instance_id": self.instance_id,
            "buckets": [b.to_json() for b in sorted(self.buckets.values(), key=lambda b: b.key)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageBook:
        return cls(
            product_code=str(data["product_code"]),
            instance_id=str(data["instance_id"]),
            buckets=[Bucket.from_json(b) for b in data["buckets"]],
        )
