"""Metering operations the emulator answers. Each takes the state, the request context and the
parsed body, and returns a `Reply` or raises `ApiError`, as the real service would.

Validation follows the API model (botocore ``meteringmarketplace/2016-01-14/service-2.json``):
ProductCode 1-255 of ``[-a-zA-Z0-9/=:_.@]``, PublicKeyVersion an integer >= 1, Nonce <= 255.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from .protocol import ApiError, Reply, RequestContext
from .state import EmulatorState, Outcome
from .tokens import TokenSigner

__all__ = ["OPERATIONS", "Operation", "register_usage"]

Operation = Callable[[EmulatorState, TokenSigner, RequestContext, dict[str, Any]], Reply]

_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")


def _require_str(body: Mapping[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = body.get(name)
    if value is None:
        raise ApiError("ValidationException", f"1 validation error detected: {name} is required")
    if not isinstance(value, str) or (pattern is not None and pattern.fullmatch(value) is None):
        raise ApiError(
            "ValidationException",
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint",
        )
    return value


def _check_region(state: EmulatorState, ctx: RequestContext) -> None:
    if ctx.region is not None and ctx.region != state.region:
        raise ApiError(
            "InvalidRegionException",
            f"RegisterUsage must be called in the task's Region ({state.region}), not {ctx.region}",
        )


_OUTCOME_ERRORS: Mapping[Outcome, tuple[str, str]] = {
    Outcome.NOT_ENTITLED: (
        "CustomerNotEntitledException",
        "Customer is not entitled to use this product",
    ),
    Outcome.PLATFORM_NOT_SUPPORTED: (
        "PlatformNotSupportedException",
        "Platform is not supported: run on Amazon ECS, Amazon EKS or AWS Fargate",
    ),
    Outcome.INVALID_REGION: ("InvalidRegionException", "Invalid region"),
    Outcome.DISABLED_API: ("DisabledApiException", "The API is disabled in this Region"),
}


def register_usage(
    state: EmulatorState, signer: TokenSigner, ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    product_code = _require_str(body, "ProductCode", _PRODUCT_CODE)
    version = body.get("PublicKeyVersion")
    if version is None:
        raise ApiError(
            "ValidationException", "1 validation error detected: PublicKeyVersion is required"
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ApiError(
            "ValidationException",
            "1 validation error detected: Value at 'PublicKeyVersion' failed to satisfy "
            "constraint: Member must have value greater than or equal to 1",
        )
    nonce = body.get("Nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > 255):
        raise ApiError(
            "ValidationException",
            "1 validation error detected: Value at 'Nonce' failed to satisfy constraint: "
            "Member must have length less than or equal to 255",
        )
    _check_region(state, ctx)
    if product_code not in state.products:
        raise ApiError("InvalidProductCodeException", f"Invalid product code {product_code}")
    behavior, fault = state.take(product_code)
    if behavior.latency > 0:
        time.sleep(behavior.latency)
    if fault == "ThrottlingException":
        raise ApiError("ThrottlingException", "Rate exceeded")
    if fault == "InternalServiceErrorException":
        raise ApiError("InternalServiceErrorException", "Internal service error", status=500)
    if behavior.outcome in _OUTCOME_ERRORS:
        code, message = _OUTCOME_ERRORS[behavior.outcome]
        raise ApiError(code, message)
    if version not in behavior.key_versions:
        raise ApiError(
            "InvalidPublicKeyVersionException",
            f"Public key version {version} is not valid for product {product_code}",
        )
    claims: dict[str, Any] = {
        "productCode": product_code,
        "publicKeyVersion": version,
        "iat": int(time.time()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    reply: dict[str, Any] = {"Signature": signer.sign(claims, product_code, version)}
    if behavior.rotation is not None:
        reply["PublicKeyRotationTimestamp"] = behavior.rotation.timestamp()
    return Reply(reply)


OPERATIONS: dict[str, Operation] = {"RegisterUsage": register_usage}
