"""RegisterUsage: entitlement at container start, answered with a PS256-signed token.

Request limits (ProductCode, PublicKeyVersion >= 1, Nonce <= 255) are the API model's, checked
before this runs. Then, in this order: the caller's Region (InvalidRegionException), the product
(InvalidProductCodeException), injected faults, the product's outcome, the key version
(InvalidPublicKeyVersionException).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entrypoint.emulator.model import modelled_error
from entrypoint.emulator.protocol import Reply, RequestContext
from entrypoint.emulator.state import EmulatorState, Outcome
from entrypoint.emulator.tokens import TokenSigner

from .common import check_region, product

__all__ = ["register_usage"]

OPERATION = "RegisterUsage"

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
    product_code: str = body["ProductCode"]
    version: int = body["PublicKeyVersion"]
    nonce: str | None = body.get("Nonce")
    check_region(state, ctx, OPERATION, "InvalidRegionException")
    behavior = product(state, OPERATION, product_code)
    if behavior.outcome in _OUTCOME_ERRORS:
        code, message = _OUTCOME_ERRORS[behavior.outcome]
        raise modelled_error(OPERATION, code, message)
    if version not in behavior.key_versions:
        raise modelled_error(
            OPERATION,
            "InvalidPublicKeyVersionException",
            f"Public key version {version} is not valid for product {product_code}",
        )
    claims: dict[str, Any] = {
        "productCode": product_code,
        "publicKeyVersion": version,
        "iat": int(state.clock()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    reply: dict[str, Any] = {"Signature": signer.sign(claims, product_code, version)}
    if behavior.rotation is not None:
        reply["PublicKeyRotationTimestamp"] = behavior.rotation.timestamp()
    return Reply(reply)
