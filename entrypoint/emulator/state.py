"""What the emulated services know: products, their behaviour, SaaS customers and their
registration tokens, every metering record it decided on (`entrypoint.emulator.ledger`), the
buyer's License Manager licenses and checkouts (`entrypoint.emulator.licensing`), and every call
it served.

Tests change this state directly and then assert what the client did and what state it left
(the simulator pattern of tuf's ``RepositorySimulator``). All access goes through the lock. Time
comes from ``clock`` (epoch seconds), so tests move the service's "now" without sleeping.
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .ledger import Ledger, UsageEntry
from .licensing import LicenseBook
from .persistence import Journal, JournalError

__all__ = [
    "CallRecord",
    "Customer",
    "EmulatorState",
    "Outcome",
    "ProductBehavior",
    "RegistrationToken",
]


class Outcome(enum.StrEnum):
    """How RegisterUsage answers for a product once throttles and faults are used up."""

    ENTITLED = "entitled"
    NOT_ENTITLED = "not-entitled"  # CustomerNotEntitledException
    PLATFORM_NOT_SUPPORTED = "platform-not-supported"  # PlatformNotSupportedException
    INVALID_REGION = "invalid-region"  # InvalidRegionException
    DISABLED_API = "disabled-api"  # DisabledApiException


@dataclass(frozen=True, slots=True)
class ProductBehavior:
    """One product's configured behaviour. Replace it (`EmulatorState.configure`) to change it.

    ``throttle`` and ``server_errors`` count down: the next N calls naming the product (any
    operation) answer ThrottlingException, then the next M InternalServiceErrorException (HTTP
    500), then ``outcome``. ``rotation`` adds PublicKeyRotationTimestamp to successful answers.
    ``latency`` delays every answer by that many seconds (a slow service, or a call to interrupt).

    Metering: ``dimensions`` are the product's pricing dimensions (MeterUsage and BatchMeterUsage
    answer InvalidUsageDimensionException for others); None accepts any dimension.
    ``unprocessed`` counts down too: the next N BatchMeterUsage records come back in
    UnprocessedRecords, as when the service is throttled part-way through a batch (the records
    at the end of a batch go unprocessed, those before it are processed).
    ``NOT_ENTITLED`` makes MeterUsage answer CustomerNotEntitledException; ``DISABLED_API`` makes
    BatchMeterUsage and ResolveCustomer answer DisabledApiException.
    """

    outcome: Outcome = Outcome.ENTITLED
    throttle: int = 0
    server_errors: int = 0
    rotation: datetime | None = None
    key_versions: tuple[int, ...] = (1,)
    latency: float = 0.0
    dimensions: tuple[str, ...] | None = None
    unprocessed: int = 0


@dataclass(frozen=True, slots=True)
class Customer:
    """A SaaS buyer of a product, for BatchMeterUsage and ResolveCustomer.

    New integrations identify buyers by ``aws_account_id`` and ``license_arn``; existing ones by
    ``identifier`` (the CustomerIdentifier). ``subscribed`` False makes their records answer
    CustomerNotSubscribed.
    """

    product_code: str
    aws_account_id: str
    identifier: str | None = None
    license_arn: str | None = None
    agreement_id: str | None = None
    subscribed: bool = True


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    """What a buyer's browser posts to the seller's registration page, for ResolveCustomer.

    **[reading]** of ExpiredTokenException's documentation ("the buyer has resubmitted the
    registration token, or your application has held on to the registration token for too
    long"): a token resolves once, before ``expires_at`` (epoch seconds).
    """

    token: str
    product_code: str
    aws_account_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One request the emulator answered."""

    seq: int
    time: float
    operation: str
    status: int
    error: str | None
    region: str | None
    access_key_id: str | None
    request: Mapping[str, Any]
    response: Mapping[str, Any]

    @property
    def product_code(self) -> str | None:
        value = self.request.get("ProductCode")
        return value if isinstance(value, str) else None

    @property
    def nonce(self) -> str | None:
        value = self.request.get("Nonce")
        return value if isinstance(value, str) else None


@dataclass
class EmulatorState:
    """Mutable service state, guarded by ``lock``."""

    region: str = "us-east-1"
    products: dict[str, ProductBehavior] = field(default_factory=dict)
    records: list[CallRecord] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock: Callable[[], float] = time.time
    customers: list[Customer] = field(default_factory=list)
    registrations: dict[str, RegistrationToken] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)
    ledger: Ledger = field(default_factory=Ledger)
    licensing: LicenseBook = field(default_factory=LicenseBook)
    journal: Journal | None = None

    def configure(self, product_code: str, **changes: Any) -> ProductBehavior:  # noqa: ANN401 - ProductBehavior fields; dataclasses.replace checks names
        """Create or change a product's behaviour; unspecified fields keep their value."""
        with self.lock:
            current = self.products.get(product_code, ProductBehavior())
            if "outcome" in changes:
                changes["outcome"] = Outcome(str(changes["outcome"]))
            if "key_versions" in changes:
                versions = changes["key_versions"]
                if not isinstance(versions, tuple | list):
                    raise TypeError("key_versions must be a tuple of integers")
                changes["key_versions"] = tuple(sorted(int(v) for v in versions))
            if changes.get("dimensions") is not None:
                dimensions = changes["dimensions"]
                if isinstance(dimensions, str) or not isinstance(dimensions, tuple | list):
                    raise TypeError("dimensions must be a tuple of strings")
                changes["dimensions"] = tuple(str(d) for d in dimensions)
            updated = replace(current, **changes)
            self.products[product_code] = updated
            return updated

    def take(self, product_code: str) -> tuple[ProductBehavior, str | None]:
        """The product's behaviour and, if a countdown is running, the fault to answer with now."""
        with self.lock:
            behavior = self.products[product_code]
            if behavior.throttle > 0:
                self.products[product_code] = replace(behavior, throttle=behavior.throttle - 1)
                return behavior, "ThrottlingException"
            if behavior.server_errors > 0:
                self.products[product_code] = replace(
                    behavior, server_errors=behavior.server_errors - 1
                )
                return behavior, "InternalServiceErrorException"
            return behavior, None

    def take_unprocessed(self, product_code: str, records: int) -> int:
        """How many of a batch's last ``records`` come back unprocessed (the countdown runs
        down by as many): the service was throttled part-way through the batch."""
        with self.lock:
            behavior = self.products.get(product_code)
            if behavior is None or behavior.unprocessed <= 0:
                return 0
            taken = min(behavior.unprocessed, records)
            self.products[product_code] = replace(
                behavior, unprocessed=behavior.unprocessed - taken
            )
            return taken

    def record(
        self,
        *,
        operation: str,
        status: int,
        error: str | None,
        region: str | None,
        access_key_id: str | None,
        request: Mapping[str, Any],
        response: Mapping[str, Any],
    ) -> CallRecord:
        with self.lock:
            entry = CallRecord(
                seq=len(self.records) + 1,
                time=self.clock(),
                operation=operation,
                status=status,
                error=error,
                region=region,
                access_key_id=access_key_id,
                request=MappingProxyType(dict(request)),
                response=MappingProxyType(dict(response)),
            )
            self.records.append(entry)
            return entry

    def calls(self, operation: str | None = None) -> list[CallRecord]:
        with self.lock:
            return [r for r in self.records if operation is None or r.operation == operation]

    # -- SaaS customers -------------------------------------------------------------------------
    def add_customer(self, customer: Customer) -> Customer:
        with self.lock:
            self.customers.append(customer)
            return customer

    def find_customer(
        self,
        *,
        product_code: str | None = None,
        identifier: str | None = None,
        aws_account_id: str | None = None,
        license_arn: str | None = None,
    ) -> Customer | None:
        """The customer a usage record names, or None. A LicenseArn names the product too."""
        with self.lock:
            for customer in self.customers:
                if license_arn is not None:
                    if customer.license_arn != license_arn:
                        continue
                elif customer.product_code != product_code:
                    continue
                if identifier is not None and customer.identifier != identifier:
                    continue
                if aws_account_id is not None and customer.aws_account_id != aws_account_id:
                    continue
                return customer
            return None

    def issue_token(
        self, product_code: str, aws_account_id: str, ttl: float, token: str | None = None
    ) -> RegistrationToken:
        """A registration token for a customer of the product, valid for ``ttl`` seconds."""
        with self.lock:
            issued = RegistrationToken(
                token=token or secrets.token_urlsafe(48),
                product_code=product_code,
                aws_account_id=aws_account_id,
                expires_at=self.clock() + ttl,
            )
            self.registrations[issued.token] = issued
            return issued

    def redeem(self, token: str) -> None:
        """Mark a registration token resolved (journalled, so a restart keeps it used)."""
        with self.lock:
            self.resolved.add(token)
            if self.journal is not None:
                self.journal.append({"kind": "resolved", "token": token})

    # -- persistence and export -----------------------------------------------------------------
    def attach_journal(self, path: Path | str) -> None:
        """Replay the journal at ``path`` into this state, then journal every new decision."""
        with self.lock:
            journal = Journal(path)
            entries: list[UsageEntry] = []
            for number, event in enumerate(journal.read(), start=2):
                kind = event.get("kind")
                try:
                    if kind == "usage":
                        entries.append(UsageEntry.from_json(event))
                    elif kind == "resolved":
                        self.resolved.add(str(event["token"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise JournalError(f"{journal.path}: line {number}: {exc}") from None
                if kind not in {"usage", "resolved"}:
                    raise JournalError(f"{journal.path}: line {number}: unknown kind {kind!r}")
            self.ledger.load(entries)
            self.journal = journal
            self.ledger.listener = self._journal_entry

    def _journal_entry(self, entry: UsageEntry) -> None:
        if self.journal is not None:
            self.journal.append({"kind": "usage", **entry.to_json()})

    def reset(self) -> None:
        """Forget every call, metering record, redeemed token and license checkout (products,
        customers and licenses stay)."""
        with self.lock:
            self.records.clear()
            self.ledger.clear()
            self.resolved.clear()
            self.licensing.clear_checkouts()
            if self.journal is not None:
                self.journal.rewrite([])

    def usage(self, **where: object) -> list[UsageEntry]:
        """Metering records, oldest first, filtered by equal fields (``billed=True``, ...)."""
        with self.lock:
            return [
                entry
                for entry in self.ledger.entries
                if all(getattr(entry, name) == value for name, value in where.items())
            ]

    def export(self) -> dict[str, Any]:
        """Everything a test or a seller may want to inspect, as JSON-ready data."""
        with self.lock:
            return {
                "format": "marketplace-entrypoint-emulator-state",
                "version": 1,
                "region": self.region,
                "now": self.clock(),
                "products": {
                    code: {
                        "outcome": behavior.outcome.value,
                        "dimensions": list(behavior.dimensions)
                        if behavior.dimensions is not None
                        else None,
                        "key_versions": list(behavior.key_versions),
                    }
                    for code, behavior in sorted(self.products.items())
                },
                "records": [entry.to_json() for entry in self.ledger.entries],
                "billed": sum(1 for entry in self.ledger.entries if entry.billed),
                "calls": len(self.records),
                "license_manager": self.licensing.export(self.clock()),
            }
