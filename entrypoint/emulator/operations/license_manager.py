"""The License Manager operations a contract-priced product calls (seller guide's IAM policy):
CheckoutLicense, CheckInLicense, ExtendLicenseConsumption, GetLicense, ListReceivedLicenses.

Requests were checked against botocore's ``license-manager`` model before these run (types,
lengths, patterns, enums, required members). Each error is one the model declares for the
operation, with its HTTP status. The rules, with their sources; **[reading]** marks our choice
where AWS documents none:

CheckoutLicense, in this order:

1. licenses for the ``ProductSKU`` from the issuer ``KeyFingerprint`` names; none:
   NoEntitlementsAllowedException ("There are no entitlements found for this license"; a live
   2026 integration saw the same for an absent license);
2. none in the Region the request was signed for: RedirectException ("This is not the correct
   Region for the resource") with ``Location``, **[reading]** the license's home Region endpoint;
3. the license's faults (latency, RateLimitExceededException, ServerInternalException,
   ResourceNotFoundException), as for a Metering product;
4. a ``ClientToken`` seen before: the same answer for the same request, nothing taken again
   ("ensure the idempotency of the request"); **[reading]** InvalidParameterValueException for
   the same token with other parameters;
5. a license not AVAILABLE (expired, suspended): NoEntitlementsAllowedException;
6. the entitlements: tiers (``Unit: None``) are allowed if the license has them, and the answer
   holds those (the tier bought); each counted one needs the same name and unit (a live
   integration found ``None`` refused for a counted dimension) and a value the pool still has
   ("the entitlement maximum count is reached"), else NoEntitlementsAllowedException for the
   whole request; nothing allowed: NoEntitlementsAllowedException.

CheckInLicense: ResourceNotFoundException for a checkout not held (unknown, checked in, expired);
**[reading]** ConflictException for a PERPETUAL one ("can't be returned") or an entitlement that
disallows check-in. ExtendLicenseConsumption: another 60 minutes from now for a held PROVISIONAL
checkout; ``DryRun`` changes nothing. GetLicense: **[reading]** InvalidParameterValueException for
an ARN or version it does not know (the model declares no ResourceNotFoundException for it).
ListReceivedLicenses: the filters the model documents (ProductSKU, Status, Fingerprint,
IssuerName, Beneficiary), ``LicenseArns``, ``MaxResults``/``NextToken`` pages.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from entrypoint.emulator.licensing import (
    PROVISIONAL_TTL,
    Consumption,
    License,
    iso,
    new_consumption_token,
)
from entrypoint.emulator.model import LICENSE_MANAGER, modelled_error, operation_names
from entrypoint.emulator.protocol import ApiError, Reply, RequestContext
from entrypoint.emulator.state import EmulatorState
from entrypoint.emulator.tokens import TokenSigner

__all__ = ["LICENSE_HANDLERS", "check_in_license", "checkout_license"]
ISSUER_KEY = "~license-issuer"  # the emulator's own key for SignedToken (no one can verify AWS's)
SIGNED_TOKEN_MIN = 4096  # CheckoutLicenseResponse.SignedToken: min 4096 in the model
_FILTERS = {"ProductSKU", "Status", "Fingerprint", "IssuerName", "Beneficiary"}


def _error(operation: str, code: str, message: str, **extra: Any) -> ApiError:  # noqa: ANN401 - members
    return modelled_error(operation, code, message, service=LICENSE_MANAGER, extra=extra or None)


def _faults(state: EmulatorState, operation: str, arn: str) -> License:
    """The license after its fault countdowns (the first fault with calls left answers)."""
    with state.lock:
        lic = state.licensing.licenses[arn]
        latency = lic.latency
        fault = next(
            (name for name in ("throttle", "server_errors", "not_found") if getattr(lic, name) > 0),
            None,
        )
        if fault is not None:
            state.licensing.change(arn, **{fault: getattr(lic, fault) - 1})
    if latency > 0:
        time.sleep(latency)
    if fault == "throttle":
        raise _error(operation, "RateLimitExceededException", "Rate exceeded")
    if fault == "server_errors":
        raise _error(operation, "ServerInternalException", "Internal server error")
    if fault == "not_found":
        raise _error(operation, "ResourceNotFoundException", "License not found")
    return lic


def _quantity(operation: str, item: Mapping[str, Any]) -> Decimal:
    try:
        value = Decimal(str(item.get("Value")))
    except InvalidOperation:
        value = Decimal(-1)
    if item.get("Value") is None or not value.is_finite() or value <= 0:
        raise _error(
            operation,
            "InvalidParameterValueException",
            f"Entitlement {item['Name']} of unit {item['Unit']} needs a positive Value",
        )
    return value


def _evaluate(
    state: EmulatorState, lic: License, wanted: Sequence[Mapping[str, Any]], now: float
) -> tuple[list[dict[str, Any]], tuple[tuple[str, str, Decimal], ...]]:
    """(EntitlementsAllowed, what the checkout takes) or NoEntitlementsAllowedException."""
    operation = "CheckoutLicense"
    allowed: list[dict[str, Any]] = []
    taken: list[tuple[str, str, Decimal]] = []
    for item in wanted:
        name, unit = str(item["Name"]), str(item["Unit"])
        have = lic.entitlement(name)
        if unit == "None":
            if have is not None and have.unit == "None":
                allowed.append({"Name": name, "Unit": unit})
            continue
        amount = _quantity(operation, item)
        if have is None or have.unit != unit:
            raise _error(
                operation,
                "NoEntitlementsAllowedException",
                f"No entitlement {name} with unit {unit} in the license",
            )
        if have.counted and not have.overage:
            free = Decimal(have.max_count or 0) - state.licensing.in_use(lic.arn, name, now)
            if amount > free:
                raise _error(
                    operation,
                    "NoEntitlementsAllowedException",
                    f"The entitlement maximum count is reached for {name} ({free} left)",
                )
        allowed.append({"Name": name, "Unit": unit, "Value": str(item["Value"])})
        taken.append((name, unit, amount))
    if not allowed:
        raise _error(
            operation, "NoEntitlementsAllowedException", "There are no entitlements allowed"
        )
    return allowed, tuple(taken)


def _signed_token(signer: TokenSigner, claims: dict[str, Any]) -> str:
    token = signer.sign(claims, ISSUER_KEY, 1)
    if len(token) < SIGNED_TOKEN_MIN:  # the model's minimum; pad the claims to reach it
        token = signer.sign({**claims, "pad": "0" * (SIGNED_TOKEN_MIN - len(token))}, ISSUER_KEY, 1)
    return token


def checkout_license(
    state: EmulatorState, signer: TokenSigner, ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    operation = "CheckoutLicense"
    sku, fingerprint = str(body["ProductSKU"]), str(body["KeyFingerprint"])
    region = ctx.region or state.region
    with state.lock:
        candidates = state.licensing.for_sku(sku, fingerprint)
    if not candidates:
        raise _error(
            operation, "NoEntitlementsAllowedException", f"No entitlements found for {sku}"
        )
    here = [lic for lic in candidates if lic.home_region == region]
    if not here:
        home = candidates[0].home_region
        raise _error(
            operation,
            "RedirectException",
            f"The license is in {home}, not {region}",
            Location=f"https://license-manager.{home}.amazonaws.com",
        )
    lic = _faults(state, operation, here[0].arn)
    key = (
        sku,
        body["CheckoutType"],
        fingerprint,
        tuple(sorted((e["Name"], e["Unit"], str(e.get("Value"))) for e in body["Entitlements"])),
        body.get("Beneficiary"),
        body.get("NodeId"),
    )
    with state.lock:
        known = state.licensing.answers.get(body["ClientToken"])
        if known is not None:
            if known[0] != key:
                raise _error(
                    operation,
                    "InvalidParameterValueException",
                    "The ClientToken was already used with different parameters",
                )
            return Reply(dict(known[1]))
        now = state.clock()
        lic = state.licensing.licenses[lic.arn]
        status = lic.status_at(now)
        if status != "AVAILABLE":
            raise _error(operation, "NoEntitlementsAllowedException", f"The license is {status}")
        allowed, taken = _evaluate(state, lic, body["Entitlements"], now)
        perpetual = body["CheckoutType"] == "PERPETUAL"
        consumption = state.licensing.take(
            Consumption(
                token=new_consumption_token(),
                license_arn=lic.arn,
                version=lic.version,
                checkout_type=str(body["CheckoutType"]),
                taken=taken,
                issued_at=now,
                expires_at=None if perpetual else now + PROVISIONAL_TTL,
                client_token=str(body["ClientToken"]),
            )
        )
        issued, expires = now - lic.stale, now + PROVISIONAL_TTL - lic.stale
        answer: dict[str, Any] = {
            "CheckoutType": body["CheckoutType"],
            "LicenseConsumptionToken": consumption.token,
            "EntitlementsAllowed": allowed,
            "IssuedAt": iso(issued),
            "Expiration": iso(expires),
            "LicenseArn": lic.arn,
        }
        if body.get("NodeId") is not None:
            answer["NodeId"] = body["NodeId"]
        claims = {
            "iss": lic.issuer,
            "licenseArn": lic.arn,
            "productSku": sku,
            "entitlements": allowed,
            "iat": int(issued),
            "exp": int(expires),
        }
        answer["SignedToken"] = _signed_token(signer, claims)
        state.licensing.answers[str(body["ClientToken"])] = (key, answer)
    return Reply(dict(answer))


def _held(state: EmulatorState, operation: str, token: str, now: float) -> Consumption:
    consumption = state.licensing.consumptions.get(token)
    if consumption is None or not consumption.holds(now):
        raise _error(
            operation, "ResourceNotFoundException", "The license consumption was not found"
        )
    return consumption


def check_in_license(
    state: EmulatorState, _signer: TokenSigner, _ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    operation = "CheckInLicense"
    with state.lock:
        now = state.clock()
        consumption = _held(state, operation, str(body["LicenseConsumptionToken"]), now)
        lic = state.licensing.licenses.get(consumption.license_arn)
    if lic is not None:
        _faults(state, operation, lic.arn)
    with state.lock:
        consumption = _held(state, operation, consumption.token, state.clock())
        if consumption.expires_at is None:
            raise _error(operation, "ConflictException", "A PERPETUAL checkout cannot be returned")
        refused = [
            name
            for name, _unit, _quantity in consumption.taken
            if lic is not None
            and (entitlement := lic.entitlement(name)) is not None
            and not entitlement.allow_check_in
        ]
        if refused:
            raise _error(operation, "ConflictException", f"{refused[0]} does not allow check-in")
        state.licensing.take(replace(consumption, checked_in_at=state.clock()))
    return Reply({})


def extend_license_consumption(
    state: EmulatorState, _signer: TokenSigner, _ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    operation = "ExtendLicenseConsumption"
    token = str(body["LicenseConsumptionToken"])
    with state.lock:
        consumption = _held(state, operation, token, state.clock())
    _faults(state, operation, consumption.license_arn)
    with state.lock:
        now = state.clock()
        consumption = _held(state, operation, token, now)
        if consumption.expires_at is None:
            raise _error(
                operation, "InvalidParameterValueException", "A PERPETUAL checkout never expires"
            )
        if body.get("DryRun") is not True:
            consumption = state.licensing.take(
                replace(consumption, expires_at=now + PROVISIONAL_TTL)
            )
        expires = consumption.expires_at or now
    return Reply({"LicenseConsumptionToken": token, "Expiration": iso(expires)})


def get_license(
    state: EmulatorState, _signer: TokenSigner, _ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    operation = "GetLicense"
    arn = str(body["LicenseArn"])
    with state.lock:
        versions = state.licensing.history.get(arn)
    if not versions:
        raise _error(operation, "InvalidParameterValueException", f"License {arn} not found")
    _faults(state, operation, arn)
    with state.lock:
        wanted = body.get("Version")
        lic = state.licensing.licenses[arn] if wanted is None else None
        if wanted is not None:
            lic = versions.get(int(wanted)) if str(wanted).isdecimal() else None
        if lic is None:
            raise _error(
                operation, "InvalidParameterValueException", f"Version {wanted} of {arn} not found"
            )
        return Reply({"License": lic.wire(state.clock())})


def _matches(lic: License, filters: Sequence[Mapping[str, Any]], now: float) -> bool:
    fields = {
        "ProductSKU": lic.product_sku,
        "Status": lic.status_at(now),
        "Fingerprint": lic.fingerprint,
        "IssuerName": lic.issuer,
        "Beneficiary": lic.beneficiary,
    }
    return all(fields[str(f["Name"])] in (f.get("Values") or []) for f in filters)


def list_received_licenses(
    state: EmulatorState, _signer: TokenSigner, _ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    operation = "ListReceivedLicenses"
    filters = body.get("Filters") or []
    unknown = [str(f.get("Name")) for f in filters if f.get("Name") not in _FILTERS]
    if unknown:
        raise _error(operation, "InvalidParameterValueException", f"Unknown filter {unknown[0]}")
    start = _page_start(operation, body.get("NextToken"))
    size = int(body.get("MaxResults") or 100)
    with state.lock:
        now = state.clock()
        arns = body.get("LicenseArns")
        chosen = [
            lic
            for arn, lic in sorted(state.licensing.licenses.items())
            if (arns is None or arn in arns) and _matches(lic, filters, now)
        ]
        page = [lic.wire(now, received=True) for lic in chosen[start : start + size]]
    answer: dict[str, Any] = {"Licenses": page}
    if start + size < len(chosen):
        answer["NextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return Reply(answer)


def _page_start(operation: str, token: object) -> int:
    if token is None:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token).encode()).decode())
    except ValueError:
        raise _error(operation, "InvalidParameterValueException", "Invalid NextToken") from None


LICENSE_HANDLERS: dict[str, Callable[[EmulatorState, TokenSigner, RequestContext, Any], Reply]] = {
    "CheckoutLicense": checkout_license,
    "CheckInLicense": check_in_license,
    "ExtendLicenseConsumption": extend_license_consumption,
    "GetLicense": get_license,
    "ListReceivedLicenses": list_received_licenses,
}
# Each is an operation of botocore's model (the others answer UnknownOperationException).
assert set(LICENSE_HANDLERS) <= set(operation_names(LICENSE_MANAGER)), "not in the model"  # noqa: S101
