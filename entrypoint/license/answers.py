"""What a License Manager answer means: the pure classification and judgement of every outcome.

No I/O and no SDK: the functions take an error code, an HTTP status and a message, or a parsed
answer and an explicit ``now``, and say what a start (or a lease) must do. As for Metering
(`entrypoint.answers`), an attempt returns an answer, raises `Transient` (throttling, server
faults, the network: retried) or a final `EntrypointError` naming what to fix.

A Marketplace license's answer carries no token a seller can verify offline (no public key
exists for the ``SignedToken`` of Marketplace-issued licenses), so what is checked here is all
there is: the answer's shape, that it is current (``IssuedAt`` not in the future, ``Expiration``
not passed, with an explicit ``now``), and that ``EntitlementsAllowed`` covers what the image
requires (`judge_checkout`). Where the answer came from is pinned by `entrypoint.license.client`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from entrypoint.answers import Transient, credential_remedies
from entrypoint.errors import (
    ConfigurationError,
    EntrypointError,
    LicenseAnswerError,
    NotEntitledError,
    ServiceError,
    one_line,
)

from .contract import ContractEntitlement, ContractProduct, LicenseModel

__all__ = [
    "LICENSE_ACTIONS",
    "LICENSE_ROLE_REMEDY",
    "MAX_CLOCK_SKEW",
    "MAX_LICENSE_ANSWER_BYTES",
    "NOT_ENTITLED_CODES",
    "Allowed",
    "CheckoutAnswer",
    "LicenseGrant",
    "LicenseStatus",
    "NoLicenseError",
    "classify_license_error",
    "judge_checkout",
    "parse_checkout",
    "parse_expiration",
    "parse_license",
    "parse_time",
]

# The seller guide's policy for contract-priced container products (prerequisites, step 3).
LICENSE_ACTIONS = (
    "license-manager:CheckoutLicense",
    "license-manager:CheckInLicense",
    "license-manager:ExtendLicenseConsumption",
    "license-manager:GetLicense",
    "license-manager:ListReceivedLicenses",
)
LICENSE_ROLE_REMEDY = (
    "give the task an IAM role allowing license-manager:CheckoutLicense, CheckInLicense, "
    "ExtendLicenseConsumption, GetLicense and ListReceivedLicenses (ECS task role, or IRSA on "
    "EKS; deploy/ holds the policy)"
)
# A checkout answer is a SignedToken (the model's minimum is 4096 characters) plus a few fields;
# a license's description a few KiB. No size is documented: 256 KiB is ours, and refuses floods.
MAX_LICENSE_ANSWER_BYTES = 256 * 1024
# The same tolerance as for RegisterUsage's iat, and SigV4's own window (5 minutes).
MAX_CLOCK_SKEW = timedelta(seconds=300)
# "There are no entitlements found for this license, or the entitlement maximum count is
# reached" (NoEntitlementsAllowedException): an absent license and a seat taken by another task
# answer the same (a live 2026 integration), so each is retried once, shortly, before it is final.
NOT_ENTITLED_CODES = frozenset(
    {
        "NoEntitlementsAllowedException",
        "EntitlementNotAllowedException",
        "ResourceNotFoundException",
    }
)
_RETRYABLE = frozenset(
    {
        "RateLimitExceededException",
        "ServerInternalException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_CONFIGURATION: Mapping[str, str] = {
    "AuthorizationException": LICENSE_ROLE_REMEDY,
    "ValidationException": "the request broke a rule of the License Manager API; check the "
    "product's contract.json (product ID, entitlement names, units and values)",
    "InvalidParameterValueException": "License Manager refused a parameter; check the product's "
    "contract.json (product ID, entitlement names, units and values)",
    "UnsupportedDigitalSignatureMethodException": "License Manager refused the signature method; "
    "report this",
    **credential_remedies(LICENSE_ROLE_REMEDY),
}
# ISO8601DateTime in the model: a date, a time, optional fractions, and an offset. A naive time
# (AWS's own examples show some) is read as UTC.
_ISO8601 = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_MAX_TIME_LENGTH = 50  # ISO8601DateTime's max


class NoLicenseError(NotEntitledError):
    """CheckoutLicense found no license it could check out (`NOT_ENTITLED_CODES`): final only
    after one short retry, since a seat another task holds answers the same."""

    def __init__(self, reason: str, *, code: str, remedy: str | None = None) -> None:
        super().__init__(reason, remedy=remedy)
        self.code = code


@dataclass(frozen=True, slots=True)
class Allowed:
    """One member of ``EntitlementsAllowed``."""

    name: str
    unit: str
    value: str | None = None

    def describe(self) -> str:
        return self.name if self.value is None else f"{self.name} {self.value} {self.unit}"


@dataclass(frozen=True, slots=True)
class CheckoutAnswer:
    """A CheckoutLicense answer whose shape was checked (not yet judged)."""

    entitlements: tuple[Allowed, ...]
    consumption_token: str | None = field(repr=False)
    license_arn: str | None
    issued_at: datetime
    expiration: datetime
    checkout_type: str | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class LicenseGrant:
    """A checkout that covers what the image requires, current at ``checked_at``.

    ``tier`` is the tier bought (tiered licenses); ``consumption_token`` checks the checkout in
    or extends it (never logged). ``expires_at`` is when the checkout ends unless extended.
    """

    product_code: str
    product_id: str
    model: LicenseModel
    entitlements: tuple[Allowed, ...]
    tier: str | None
    license_arn: str | None
    consumption_token: str | None = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    checked_at: datetime

    def summary(self) -> dict[str, Any]:
        """Loggable facts (no consumption token)."""
        return {
            "product_code": self.product_code,
            "product_id": self.product_id,
            "license_model": self.model.value,
            "license_arn": self.license_arn,
            "tier": self.tier,
            "entitlements": [allowed.describe() for allowed in self.entitlements],
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class LicenseStatus:
    """What GetLicense says of the license now: status, version and validity."""

    license_arn: str
    status: str
    version: str | None
    valid_until: datetime | None
    entitlements: tuple[str, ...]

    def usable(self, now: datetime) -> bool:
        return self.status == "AVAILABLE" and (self.valid_until is None or now < self.valid_until)


def parse_time(value: object, what: str) -> datetime:
    """An ISO 8601 time of the answer as an aware UTC datetime, or `LicenseAnswerError`."""
    if (
        not isinstance(value, str)
        or len(value) > _MAX_TIME_LENGTH
        or _ISO8601.fullmatch(value) is None
    ):
        raise LicenseAnswerError(
            f"the License Manager answer's {what} is {one_line(repr(value), 60)}, not an ISO "
            "8601 time",
            remedy="the workload was not started; check what answers at the License Manager "
            "endpoint",
        )
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise LicenseAnswerError(
            f"the License Manager answer's {what} {one_line(value, 60)!r} is not a valid time",
            remedy="the workload was not started",
        ) from None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _optional_text(response: Mapping[str, Any], name: str) -> str | None:
    value = response.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LicenseAnswerError(
            f"the License Manager answer's {name} is {type(value).__name__}, not a string",
            remedy="the workload was not started",
        )
    return value


def _allowed(items: object) -> tuple[Allowed, ...]:
    if not isinstance(items, list):
        raise LicenseAnswerError(
            "the CheckoutLicense answer carried no EntitlementsAllowed list",
            remedy="the workload was not started; check what answers at the License Manager "
            "endpoint",
        )
    result: list[Allowed] = []
    for item in items:
        name = item.get("Name") if isinstance(item, dict) else None
        unit = item.get("Unit") if isinstance(item, dict) else None
        value = item.get("Value") if isinstance(item, dict) else None
        if (
            not isinstance(name, str)
            or not isinstance(unit, str)
            or not (value is None or isinstance(value, str))
        ):
            raise LicenseAnswerError(
                "an EntitlementsAllowed member is not {Name, Unit, Value} strings",
                remedy="the workload was not started",
            )
        result.append(Allowed(name=name, unit=unit, value=value))
    return tuple(result)


def parse_checkout(response: Mapping[str, Any]) -> CheckoutAnswer:
    """Check a parsed CheckoutLicense answer's shape; raise `LicenseAnswerError` if it is not
    one (no EntitlementsAllowed list, times missing or malformed, members of the wrong type)."""
    return CheckoutAnswer(
        entitlements=_allowed(response.get("EntitlementsAllowed")),
        consumption_token=_optional_text(response, "LicenseConsumptionToken"),
        license_arn=_optional_text(response, "LicenseArn"),
        issued_at=parse_time(response.get("IssuedAt"), "IssuedAt"),
        expiration=parse_time(response.get("Expiration"), "Expiration"),
        checkout_type=_optional_text(response, "CheckoutType"),
        node_id=_optional_text(response, "NodeId"),
    )


def parse_expiration(response: Mapping[str, Any]) -> datetime:
    """The new ``Expiration`` of an ExtendLicenseConsumption answer."""
    return parse_time(response.get("Expiration"), "Expiration")


def parse_license(response: Mapping[str, Any]) -> LicenseStatus:
    """A GetLicense answer's status, version, validity end and entitlement names."""
    license_ = response.get("License")
    if not isinstance(license_, dict):
        raise LicenseAnswerError("the GetLicense answer carried no License", remedy="check again")
    arn = _optional_text(license_, "LicenseArn") or ""
    validity = license_.get("Validity") if isinstance(license_.get("Validity"), dict) else {}
    end = validity.get("End") if isinstance(validity, dict) else None
    entitlements = license_.get("Entitlements")
    names = tuple(
        str(item["Name"])
        for item in (entitlements if isinstance(entitlements, list) else [])
        if isinstance(item, dict) and isinstance(item.get("Name"), str)
    )
    return LicenseStatus(
        license_arn=arn,
        status=_optional_text(license_, "Status") or "UNKNOWN",
        version=_optional_text(license_, "Version"),
        valid_until=parse_time(end, "Validity.End") if end is not None else None,
        entitlements=names,
    )


def _quantity(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _covers(allowed: Allowed, wanted: ContractEntitlement) -> bool:
    """``allowed`` grants ``wanted``: the same name and unit, and for counted entitlements no
    smaller a quantity. **[reading]** a Value that is absent or not a number (AWS's own example
    answers show ``"Value": "Enabled"`` for a counted entitlement) does not refuse: the service
    allowed the entitlement by name, and a partial grant is answered NoEntitlementsAllowed."""
    if allowed.name != wanted.name or allowed.unit != wanted.unit:
        return False
    requested, granted = wanted.quantity, _quantity(allowed.value)
    return requested is None or granted is None or granted >= requested


def _current(answer: CheckoutAnswer, now: datetime) -> None:
    if answer.issued_at > now + MAX_CLOCK_SKEW:
        raise LicenseAnswerError(
            f"the checkout was issued at {answer.issued_at.isoformat()}, in the future of this "
            f"host's clock ({now.isoformat()})",
            remedy="the workload was not started; check this host's clock (NTP)",
        )
    if answer.expiration <= now:
        raise LicenseAnswerError(
            f"the checkout expired at {answer.expiration.isoformat()}, before this host's clock "
            f"({now.isoformat()}): a stale or replayed answer",
            remedy="the workload was not started; check this host's clock and what answers at "
            "the License Manager endpoint",
        )
    if answer.expiration <= answer.issued_at:
        raise LicenseAnswerError(
            "the checkout's Expiration is not after its IssuedAt",
            remedy="the workload was not started",
        )


def judge_checkout(
    contract: ContractProduct, answer: CheckoutAnswer, now: datetime
) -> LicenseGrant:
    """The grant, if ``answer`` is current at ``now`` and covers what ``contract`` requires.

    Tiered: at least one of the image's tiers is allowed (the tier bought). Otherwise: every
    required entitlement is allowed, with its unit and at least its quantity. Raises
    `LicenseAnswerError` (65) for an answer that is not current, `NotEntitledError` (77) for one
    that does not cover the requirement (the checkout must then be checked in by the caller).
    """
    _current(answer, now)
    wanted = contract.entitlements
    if contract.model is LicenseModel.TIERED:
        tiers = [w.name for w in wanted if any(_covers(a, w) for a in answer.entitlements)]
        if not tiers:
            raise NotEntitledError(
                f"the license of {contract.product_id} allows "
                f"{_list(answer.entitlements)}, none of the tiers this image accepts "
                f"({' | '.join(w.name for w in wanted)})",
                remedy="the buyer's contract is for another tier: they can upgrade it in AWS "
                "Marketplace",
            )
        tier: str | None = tiers[0]
    else:
        missing = [w for w in wanted if not any(_covers(a, w) for a in answer.entitlements)]
        if missing:
            raise NotEntitledError(
                f"the license of {contract.product_id} allows {_list(answer.entitlements)}, "
                f"not {', '.join(m.describe() for m in missing)}",
                remedy="the buyer's contract does not include this entitlement: they can "
                "upgrade it in AWS Marketplace",
            )
        tier = None
    return LicenseGrant(
        product_code=contract.product_code,
        product_id=contract.product_id,
        model=contract.model,
        entitlements=answer.entitlements,
        tier=tier,
        license_arn=answer.license_arn,
        consumption_token=answer.consumption_token,
        issued_at=answer.issued_at,
        expires_at=answer.expiration,
        checked_at=now,
    )


def _list(allowed: Sequence[Allowed]) -> str:
    return ", ".join(one_line(a.describe(), 80) for a in allowed) or "nothing"


def _redirect(location: str | None, shown: str) -> ConfigurationError:
    where = f" (Location: {one_line(location, 120)})" if location else ""
    return ConfigurationError(
        f"License Manager answered RedirectException{where}: this is not the Region of the "
        f"buyer's license{': ' + shown if shown else ''}",
        remedy="run the task in the Region where the buyer's license is, or set AWS_REGION to "
        "it; a redirect is never followed, since the answer carries no signature",
    )


def classify_license_error(
    operation: str, code: str, status: int, message: str, *, location: str | None = None
) -> EntrypointError | Transient:
    """Map a License Manager error answer to what a start must do about it.

    Throttling (RateLimitExceededException) and server faults are `Transient`. For
    CheckoutLicense, the not-entitled codes (`NOT_ENTITLED_CODES`) are `NotEntitledError`, which
    the caller retries once after a short wait; RedirectException, access and validation errors
    are `ConfigurationError`; anything else is a `ServiceError` (76).
    """
    shown = one_line(message, 200)
    if code in _RETRYABLE or status == 429 or status >= 500:
        return Transient(code or f"HTTP {status}", shown)
    if code == "RedirectException":
        return _redirect(location, shown)
    if operation == "CheckoutLicense" and code in NOT_ENTITLED_CODES:
        return NoLicenseError(
            f"License Manager found no license covering this product ({code}"
            f"{': ' + shown if shown else ''})",
            code=code,
            remedy="the buyer must buy a contract for the product in AWS Marketplace, in this "
            "account and Region; if it is a floating license, every seat may be in use",
        )
    if code == "ResourceNotFoundException":  # CheckIn / Extend: the checkout is gone
        return NotEntitledError(
            f"{operation}: License Manager no longer knows the checkout ({shown or code})",
            remedy="it expired (a floating seat is returned after 60 minutes) or the license "
            "was removed; check out again",
        )
    remedy = _CONFIGURATION.get(code)
    if remedy is not None:
        return ConfigurationError(f"{operation} refused: {code}: {shown}", remedy=remedy)
    return ServiceError(
        f"{operation} refused with HTTP {status} {code or '(no error code)'}: {shown}",
        remedy="the workload was not started; report this if it persists",
    )
