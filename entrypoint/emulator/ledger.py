"""The emulated service's metering records: every usage record it decided on, and why.

One `UsageEntry` per record the service ruled on, append-only, in order. ``status`` is what the
service told the client about that record; ``billed`` is True only for the entry that created a
metering record, so ``[e for e in entries if e.billed]`` is exactly what AWS would bill. Retries
that AWS answers idempotently appear as entries with ``billed=False`` and the original
``record_id``: the proof that a client's retry was not counted twice.

Rules, from the API model's documentation (botocore ``service-2.json``):

* MeterUsage: "The ``Timestamp`` request parameter is rounded down to the hour and used to enforce
  this once-per-hour rule"; a repeat that is "identical after the ``Timestamp`` is rounded down"
  returns the same MeteringRecordId; another quantity for the same dimension and hour is
  DuplicateRequestException ("Quantities are compared by value, so ... 17 and 17.00 are not
  different"). The emulator stands for one ECS task or EKS pod, so the hour rule is per product,
  dimension and hour.
* MeterUsage ``ClientToken``: "If you retry the operation with the same ClientToken, but with
  different parameters, the retry fails with an IdempotencyConflictException".
* BatchMeterUsage: "Multiple requests with the same UsageRecords as input will be de-duplicated";
  DuplicateRecord: "A previously metered UsageRecord had the same customer, dimension, and time,
  but a different quantity". **[reading]** "time" is the hour, as for MeterUsage, and records keyed
  by ProductCode and by LicenseArn are apart ("Sending metering records with both ProductCode and
  LicenseArn for the same customer within the same hour will result in duplicate billing").

The ledger does no I/O: a listener (the journal) sees each new entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

__all__ = ["HOUR", "Allocation", "Ledger", "UsageEntry", "canonical_quantity", "hour_of"]

HOUR = 3600

# (sorted tags as (key, value) pairs, canonical quantity)
Allocation = tuple[tuple[tuple[str, str], ...], str]


def hour_of(timestamp: float) -> int:
    """The start of the UTC hour ``timestamp`` falls in ("rounded down to the hour")."""
    return int(timestamp // HOUR) * HOUR


def canonical_quantity(value: Decimal) -> str:
    """One spelling per value, so that 17, 17.0 and 17.00 compare equal."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One usage record the service ruled on (see the module docstring for the statuses)."""

    seq: int
    operation: str  # "MeterUsage" | "BatchMeterUsage"
    status: str  # MeterUsage: Success, DuplicateRequest, IdempotencyConflict;
    # BatchMeterUsage: Success, DuplicateRecord, CustomerNotSubscribed, Unprocessed
    billed: bool
    record_id: str | None
    product_code: str | None
    dimension: str
    timestamp: float
    hour: int
    quantity: str
    allocations: tuple[Allocation, ...] = ()
    client_token: str | None = None
    license_arn: str | None = None
    customer: str | None = None
    received_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["allocations"] = [
            {"tags": [list(tag) for tag in tags], "quantity": quantity}
            for tags, quantity in self.allocations
        ]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageEntry:
        fields = dict(data)
        fields.pop("kind", None)
        fields["allocations"] = tuple(
            (tuple((str(k), str(v)) for k, v in item["tags"]), str(item["quantity"]))
            for item in fields.get("allocations", ())
        )
        return cls(**fields)


def _fingerprint(entry: UsageEntry) -> tuple[object, ...]:
    """What "the same parameters" means for a ClientToken: all of them, quantities by value."""
    return (
        entry.product_code,
        entry.dimension,
        float(entry.timestamp),
        entry.quantity,
        entry.allocations,
    )


class Ledger:
    """Append-only entries with the indexes the rules need. Not thread-safe: callers hold the
    emulator state's lock."""

    def __init__(self, listener: Callable[[UsageEntry], None] | None = None) -> None:
        self.entries: list[UsageEntry] = []
        self.listener = listener
        self._hours: dict[tuple[str, str, int], UsageEntry] = {}
        self._tokens: dict[str, tuple[tuple[object, ...], str]] = {}
        self._batch: dict[tuple[str, str, str, int], UsageEntry] = {}

    # -- loading and resetting ------------------------------------------------------------------
    def load(self, entries: Iterable[UsageEntry]) -> None:
        """Replay entries read back from a journal (no listener call)."""
        for entry in entries:
            self._index(entry)
            self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()
        self._hours.clear()
        self._tokens.clear()
        self._batch.clear()

    def _index(self, entry: UsageEntry) -> None:
        if entry.status != "Success" or entry.record_id is None:
            return
        if entry.operation == "MeterUsage":
            if entry.billed:
                self._hours[(entry.product_code or "", entry.dimension, entry.hour)] = entry
            if entry.client_token is not None:
                self._tokens.setdefault(entry.client_token, (_fingerprint(entry), entry.record_id))
        elif entry.billed:
            self._batch[_batch_key(entry)] = entry

    def _append(self, draft: UsageEntry) -> UsageEntry:
        self._index(draft)
        self.entries.append(draft)
        if self.listener is not None:
            self.listener(draft)
        return draft

    def next_seq(self) -> int:
        return len(self.entries) + 1

    # -- decisions ------------------------------------------------------------------------------
    def meter_usage(self, draft: UsageEntry) -> UsageEntry:
        """Decide a MeterUsage record (``draft`` has status/billed/record_id unset)."""
        fingerprint = _fingerprint(draft)
        if draft.client_token is not None and draft.client_token in self._tokens:
            known, record_id = self._tokens[draft.client_token]
            if known != fingerprint:
                return self._append(_decided(draft, "IdempotencyConflict", None, billed=False))
            return self._append(_decided(draft, "Success", record_id, billed=False))
        existing = self._hours.get((draft.product_code or "", draft.dimension, draft.hour))
        if existing is None:
            return self._append(_decided(draft, "Success", _new_record_id(), billed=True))
        if (existing.quantity, existing.allocations) == (draft.quantity, draft.allocations):
            return self._append(_decided(draft, "Success", existing.record_id, billed=False))
        return self._append(_decided(draft, "DuplicateRequest", None, billed=False))

    def batch_record(self, draft: UsageEntry) -> UsageEntry:
        """Decide one BatchMeterUsage record of a subscribed customer."""
        existing = self._batch.get(_batch_key(draft))
        if existing is None:
            return self._append(_decided(draft, "Success", _new_record_id(), billed=True))
        if (existing.quantity, existing.allocations) == (draft.quantity, draft.allocations):
            return self._append(_decided(draft, "Success", existing.record_id, billed=False))
        return self._append(_decided(draft, "DuplicateRecord", None, billed=False))

    def refused(self, draft: UsageEntry, status: str) -> UsageEntry:
        """A record answered without a decision on it (CustomerNotSubscribed, Unprocessed)."""
        return self._append(_decided(draft, status, None, billed=False))


def _batch_key(entry: UsageEntry) -> tuple[str, str, str, int]:
    scope = f"license:{entry.license_arn}" if entry.license_arn else f"product:{entry.product_code}"
    return (scope, entry.customer or "", entry.dimension, entry.hour)


def _decided(draft: UsageEntry, status: str, record_id: str | None, *, billed: bool) -> UsageEntry:
    from dataclasses import replace

    return replace(draft, status=status, record_id=record_id, billed=billed)


def _new_record_id() -> str:
    return str(uuid.uuid4())
