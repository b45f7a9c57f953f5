"""What the emulated AWS License Manager knows: the buyer's licenses and every checkout of them.

Licenses are issued by AWS Marketplace (issuer ``AWS/Marketplace``, key fingerprint
``aws:294406891311:AWS/Marketplace:issuer-fingerprint``) to the buyer's account, each with its
entitlements, validity, home Region and version. A checkout (a "consumption") takes entitlements
from the license's pool:

* a tier (``Unit: None``) is never counted: any number of checkouts may name it;
* a counted entitlement has a ``MaxCount``; a PROVISIONAL checkout holds its value until it is
  checked in or its time to live runs out ("the entitlement checks back into the pool
  automatically after 60 minutes"), ExtendLicenseConsumption giving it "another 60 minutes";
  a PERPETUAL checkout (drawdown) holds it for good ("can't be returned to the license pool");
* a renewal or an upgrade makes "a new version of the license that reflects the new
  entitlements" (seller guide, License renewals and upgrades); checkouts stay with the license.

No I/O and no HTTP: `entrypoint.emulator.operations.license_manager` answers the API from this
state, under the emulator's lock, with the emulator's clock (epoch seconds).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "MARKETPLACE_ACCOUNT",
    "MARKETPLACE_FINGERPRINT",
    "MARKETPLACE_ISSUER",
    "PROVISIONAL_TTL",
    "Consumption",
    "License",
    "LicenseBook",
    "LicensedEntitlement",
    "iso",
]

MARKETPLACE_ACCOUNT = "294406891311"
MARKETPLACE_ISSUER = "AWS/Marketplace"
MARKETPLACE_FINGERPRINT = f"aws:{MARKETPLACE_ACCOUNT}:{MARKETPLACE_ISSUER}:issuer-fingerprint"
PROVISIONAL_TTL = 3600.0  # 60 minutes, for a checkout and for each extension
BUYER_ACCOUNT = "111122223333"  # the emulator's default principal's account


def iso(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds, as License Manager's ISO8601DateTime strings."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class LicensedEntitlement:
    """One entitlement of a license. ``max_count`` None: a tier or an unlimited entitlement."""

    name: str
    unit: str = "None"
    max_count: int | None = None
    value: str | None = None
    overage: bool = False
    allow_check_in: bool = True

    @property
    def counted(self) -> bool:
        return self.unit != "None" and self.max_count is not None

    def wire(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"Name": self.name, "Unit": self.unit}
        if self.max_count is not None:
            entry["MaxCount"] = self.max_count
        if self.value is not None:
            entry["Value"] = self.value
        entry["Overage"] = self.overage
        entry["AllowCheckIn"] = self.allow_check_in
        return entry


@dataclass(frozen=True, slots=True)
class License:
    """One license granted to the buyer, at one version. Replace it to change or renew it.

    Faults count down per license, like a product's (``throttle``: RateLimitExceededException;
    ``server_errors``: ServerInternalException, HTTP 500; ``not_found``: ResourceNotFoundException,
    a license not yet visible after a purchase); ``latency`` delays every answer naming it;
    ``stale`` shifts a checkout's IssuedAt and Expiration that many seconds into the past (a
    replayed or skewed answer, for clients that must check it is current).
    """

    arn: str
    product_sku: str
    entitlements: tuple[LicensedEntitlement, ...]
    begin: float
    end: float | None = None
    home_region: str = "us-east-1"
    version: int = 1
    status: str = "AVAILABLE"
    product_name: str = "Emulated product"
    license_name: str = "AWS Marketplace license"
    beneficiary: str = BUYER_ACCOUNT
    issuer: str = MARKETPLACE_ISSUER
    fingerprint: str = MARKETPLACE_FINGERPRINT
    created: float = 0.0
    throttle: int = 0
    server_errors: int = 0
    not_found: int = 0
    latency: float = 0.0
    stale: float = 0.0

    def status_at(self, now: float) -> str:
        if self.status == "AVAILABLE" and self.end is not None and now >= self.end:
            return "EXPIRED"
        return self.status

    def entitlement(self, name: str) -> LicensedEntitlement | None:
        return next((e for e in self.entitlements if e.name == name), None)

    def wire(self, now: float, *, received: bool = False) -> dict[str, Any]:
        """The ``License`` (GetLicense) or ``GrantedLicense`` (ListReceivedLicenses) document."""
        validity = {"Begin": iso(self.begin)}
        if self.end is not None:
            validity["End"] = iso(self.end)
        document: dict[str, Any] = {
            "LicenseArn": self.arn,
            "LicenseName": self.license_name,
            "ProductName": self.product_name,
            "ProductSKU": self.product_sku,
            "Issuer": {"Name": self.issuer, "KeyFingerprint": self.fingerprint},
            "HomeRegion": self.home_region,
            "Status": self.status_at(now),
            "Validity": validity,
            "Beneficiary": self.beneficiary,
            "Entitlements": [e.wire() for e in self.entitlements],
            "ConsumptionConfiguration": {
                "RenewType": "None",
                "ProvisionalConfiguration": {"MaxTimeToLiveInMinutes": int(PROVISIONAL_TTL // 60)},
            },
            "CreateTime": str(int(self.created)),
            "Version": str(self.version),
        }
        if received:
            document["ReceivedMetadata"] = {
                "ReceivedStatus": "ACTIVE",
                "AllowedOperations": [
                    "CheckoutLicense",
                    "CheckInLicense",
                    "ExtendConsumptionLicense",
                ],
            }
        return document


@dataclass(frozen=True, slots=True)
class Consumption:
    """One checkout: what it took from which license, until when. ``expires_at`` None: held for
    good (PERPETUAL)."""

    token: str
    license_arn: str
    version: int
    checkout_type: str
    taken: tuple[tuple[str, str, Decimal], ...]  # (name, unit, quantity) of counted ones
    issued_at: float
    expires_at: float | None
    client_token: str
    checked_in_at: float | None = None

    def holds(self, now: float) -> bool:
        """Whether it still takes from the pool at ``now``."""
        if self.checked_in_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "license_arn": self.license_arn,
            "version": self.version,
            "checkout_type": self.checkout_type,
            "entitlements": [
                {"name": name, "unit": unit, "value": str(quantity)}
                for name, unit, quantity in self.taken
            ],
            "issued_at": iso(self.issued_at),
            "expires_at": iso(self.expires_at) if self.expires_at is not None else None,
            "checked_in_at": iso(self.checked_in_at) if self.checked_in_at else None,
            "held": self.holds(now),
        }


@dataclass
class LicenseBook:
    """Licenses (every version kept, for GetLicense's ``Version``), checkouts by consumption
    token, and CheckoutLicense answers by ClientToken (idempotency). Callers hold the lock."""

    licenses: dict[str, License] = field(default_factory=dict)
    history: dict[str, dict[int, License]] = field(default_factory=dict)
    consumptions: dict[str, Consumption] = field(default_factory=dict)
    answers: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)

    def add(self, license_: License) -> License:
        self.licenses[license_.arn] = license_
        self.history.setdefault(license_.arn, {})[license_.version] = license_
        return license_

    def change(self, arn: str, **changes: Any) -> License:  # noqa: ANN401 - License fields
        """Change a license in place (faults, status), keeping its version."""
        return self.add(replace(self.licenses[arn], **changes))

    def renew(self, arn: str, **changes: Any) -> License:  # noqa: ANN401 - License fields
        """A new version of the license, as a renewal or upgrade makes one."""
        current = self.licenses[arn]
        return self.add(replace(current, version=current.version + 1, **changes))

    def for_sku(self, product_sku: str, fingerprint: str) -> list[License]:
        return [
            lic
            for lic in self.licenses.values()
            if lic.product_sku == product_sku and lic.fingerprint == fingerprint
        ]

    def in_use(self, arn: str, name: str, now: float) -> Decimal:
        """How much of entitlement ``name`` of license ``arn`` checkouts hold at ``now``."""
        return sum(
            (
                quantity
                for consumption in self.consumptions.values()
                if consumption.license_arn == arn and consumption.holds(now)
                for taken_name, _unit, quantity in consumption.taken
                if taken_name == name
            ),
            Decimal(0),
        )

    def take(self, consumption: Consumption) -> Consumption:
        self.consumptions[consumption.token] = consumption
        return consumption

    def held(self, now: float) -> Iterator[Consumption]:
        return (c for c in self.consumptions.values() if c.holds(now))

    def clear_checkouts(self) -> None:
        self.consumptions.clear()
        self.answers.clear()

    def export(self, now: float) -> dict[str, Any]:
        """Licenses with what is in use, and every checkout (``held`` ones hold seats now)."""
        return {
            "licenses": {
                arn: {
                    "product_sku": lic.product_sku,
                    "version": lic.version,
                    "status": lic.status_at(now),
                    "home_region": lic.home_region,
                    "end": iso(lic.end) if lic.end is not None else None,
                    "entitlements": [
                        {
                            "name": e.name,
                            "unit": e.unit,
                            "max_count": e.max_count,
                            "in_use": str(self.in_use(arn, e.name, now)),
                        }
                        for e in lic.entitlements
                    ],
                }
                for arn, lic in sorted(self.licenses.items())
            },
            "checkouts": [c.describe(now) for c in self.consumptions.values()],
            "held_checkouts": sum(1 for _ in self.held(now)),
        }


def new_license_arn(account: str = MARKETPLACE_ACCOUNT) -> str:
    """An ARN in License Manager's form (``arn:aws:license-manager::<account>:license:l-...``)."""
    return f"arn:aws:license-manager::{account}:license:l-{secrets.token_hex(16)}"


def new_consumption_token() -> str:
    return secrets.token_hex(32)


def entitlements_from(
    items: Iterable[LicensedEntitlement | dict[str, Any]],
) -> tuple[LicensedEntitlement, ...]:
    """Entitlements from objects or ``{"name", "unit", "max_count", ...}`` dicts."""
    return tuple(
        item if isinstance(item, LicensedEntitlement) else LicensedEntitlement(**item)
        for item in items
    )
