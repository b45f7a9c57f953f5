"""What a Metering answer means: the pure classification of every outcome of an attempt.

No I/O and no SDK here: the functions take an error code, an HTTP status and a message (or a
parsed answer) and say what the bootstrap must do about it. An attempt either returns an answer,
raises `Transient` (worth retrying: throttling, server faults, the network) or raises a final
`EntrypointError` that says what the operator must fix. The botocore call that produces the
inputs is `entrypoint.metering`; the retry loop that acts on `Transient` is `entrypoint.retry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import (
    ConfigurationError,
    EntrypointError,
    NotEntitledError,
    PlatformNotSupportedError,
    ServiceError,
    UsageRejectedError,
    VerificationError,
    one_line,
)

__all__ = [
    "IAM_ACTION",
    "IDENTITY_FILE_REMEDY",
    "MAX_ANSWER_BYTES",
    "METER_USAGE_IAM_ACTION",
    "METER_USAGE_ROLE_REMEDY",
    "ROLE_REMEDY",
    "MeterUsageAnswer",
    "RegisterUsageAnswer",
    "Transient",
    "answer_from_response",
    "classify_client_error",
    "classify_meter_usage_error",
    "classify_oversized",
    "classify_sts_error",
    "classify_unparsable",
    "credential_remedies",
]

IAM_ACTION = "aws-marketplace:RegisterUsage"
# Cap on a RegisterUsage response body (tuf's UpdaterConfig habit: a size cap for every untrusted
# input). A real answer is a Signature of at most MAX_TOKEN_LENGTH (16 KiB) plus a timestamp; an
# error is a short JSON object. 64 KiB leaves room for a proxy's error page and refuses floods.
MAX_ANSWER_BYTES = 64 * 1024
METER_USAGE_IAM_ACTION = "aws-marketplace:MeterUsage"


def _role_remedy(action: str, policy: str) -> str:
    return (
        f"give the task an IAM role allowing {action} (ECS task role, or IRSA on EKS; managed "
        f"policy {policy})"
    )


ROLE_REMEDY = _role_remedy(IAM_ACTION, "AWSMarketplaceMeteringRegisterUsage")
_IRSA_REMEDY = (
    "check the IAM role's trust policy (the cluster's OIDC provider, sub "
    "system:serviceaccount:<namespace>:<serviceaccount>) and the service account's "
    "eks.amazonaws.com/role-arn annotation"
)
IDENTITY_FILE_REMEDY = (
    "on EKS the IRSA token is projected at AWS_WEB_IDENTITY_TOKEN_FILE: set the pod's "
    "securityContext.fsGroup so a non-root user can read it; on ECS check "
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
)


@dataclass(frozen=True, slots=True)
class RegisterUsageAnswer:
    """A successful RegisterUsage response, not yet verified."""

    signature: str
    public_key_rotation: datetime | None = None


class Transient(Exception):  # noqa: N818 - names an outcome, not a failure of ours
    """An attempt failed in a way worth retrying. ``code`` names it for the log."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = one_line(code, 80)
        self.detail = one_line(detail, 200)
        super().__init__(f"{self.code}: {self.detail}" if self.detail else self.code)


@dataclass(frozen=True, slots=True)
class MeterUsageAnswer:
    """A MeterUsage that the service accepted: ``record_id`` is its MeteringRecordId, or None
    for a DryRun (answered ``DryRunOperation``: permitted, nothing recorded)."""

    record_id: str | None
    dry_run: bool = False


def credential_remedies(role_remedy: str) -> dict[str, str]:
    """What AWS's front end answers for credentials and signing, and the remedy for each."""
    return {
        "AccessDeniedException": role_remedy,
        "AccessDenied": role_remedy,
        "UnrecognizedClientException": "the credentials are not valid AWS credentials; "
        + role_remedy,
        "InvalidClientTokenId": "the access key is not valid; " + role_remedy,
        "ExpiredTokenException": "the credentials have expired; use the task role or IRSA, whose "
        "credentials are refreshed automatically",
        "ExpiredToken": "the credentials have expired; use the task role or IRSA, whose "
        "credentials are refreshed automatically",
        "InvalidSignatureException": "the request signature was refused; check the secret key "
        "and this host's clock",
        "SignatureDoesNotMatch": "the request signature was refused; check the secret key and "
        "this host's clock",
        "IncompleteSignature": "the request signature was incomplete; check the credentials",
        "MissingAuthenticationTokenException": "the request was not signed; " + role_remedy,
        "MissingAuthenticationToken": "the request was not signed; " + role_remedy,
    }


# Errors RegisterUsage models, plus the ones AWS's front end gives for credentials and signing.
_FINAL_CONFIGURATION: Mapping[str, str] = {
    "InvalidProductCodeException": "the product code does not match an AWS Marketplace listing; "
    "check MARKETPLACE_PRODUCT_CODE and the keys directory against the Management Portal",
    "InvalidPublicKeyVersionException": "AWS does not know this public key version for the "
    "product; check MARKETPLACE_PUBLIC_KEY_VERSION and the v<N>.pem files",
    "InvalidRegionException": "RegisterUsage must be called in the Region the task runs in; "
    "check AWS_REGION / AWS_DEFAULT_REGION",
    "DisabledApiException": "the Metering API is disabled in this Region; run in a Region "
    "AWS Marketplace supports",
    **credential_remedies(ROLE_REMEDY),
}
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def classify_client_error(code: str, status: int, message: str) -> EntrypointError | Transient:
    """Map a Metering error response to what the bootstrap must do about it.

    AWS: retry ThrottlingException (and server faults) "for up to 30 minutes, with exponential
    back off"; "if your container image ... receives an exception other than ThrottlingException
    at container startup, you should terminate the container".
    """
    shown = one_line(message, 200)
    if code in _RETRYABLE_CODES or status == 429 or status >= 500:
        return Transient(code or f"HTTP {status}", shown)
    if code == "CustomerNotEntitledException":
        return NotEntitledError(
            f"the buyer has no active subscription to this product (CustomerNotEntitledException"
            f"{': ' + shown if shown else ''})",
            remedy="the buyer must subscribe to the product in AWS Marketplace",
        )
    if code == "PlatformNotSupportedException":
        return PlatformNotSupportedError(
            f"RegisterUsage is only answered on Amazon ECS, Amazon EKS and AWS Fargate "
            f"(PlatformNotSupportedException{': ' + shown if shown else ''})",
            remedy="run the product on ECS, EKS or Fargate; use `marketplace-entrypoint demo` "
            "to try it locally",
        )
    remedy = _FINAL_CONFIGURATION.get(code)
    if remedy is not None:
        return ConfigurationError(f"RegisterUsage refused: {code}: {shown}", remedy=remedy)
    return ServiceError(
        f"RegisterUsage refused with HTTP {status} {code or '(no error code)'}: {shown}",
        remedy="the container was stopped as AWS requires for errors other than throttling; "
        "report this if it persists",
    )


def classify_sts_error(code: str, status: int, message: str) -> EntrypointError | Transient:
    """An error from STS while botocore fetched IRSA credentials (AssumeRoleWithWebIdentity)."""
    shown = one_line(message, 200)
    if (
        code in _RETRYABLE_CODES
        or code == "IDPCommunicationError"
        or status == 429
        or status >= 500
    ):
        return Transient(f"STS {code or f'HTTP {status}'}", shown)
    return ConfigurationError(
        f"IRSA credentials refused: STS AssumeRoleWithWebIdentity answered {code}: {shown}",
        remedy=_IRSA_REMEDY,
    )


METER_USAGE_ROLE_REMEDY = _role_remedy(METER_USAGE_IAM_ACTION, "AWSMarketplaceMeteringFullAccess")

# Errors MeterUsage models (botocore service-2.json, operation MeterUsage), plus the front end's.
_METER_USAGE_CONFIGURATION: Mapping[str, str] = {
    "InvalidProductCodeException": "the product code does not match an AWS Marketplace listing; "
    "check MARKETPLACE_PRODUCT_CODE against the Management Portal",
    "InvalidUsageDimensionException": "the dimension is not one of the product's pricing "
    "dimensions; use a dimension's API name as the Management Portal shows it",
    "InvalidEndpointRegionException": "MeterUsage must be called in the Region the task runs in; "
    "check AWS_REGION / AWS_DEFAULT_REGION",
    "InvalidUsageAllocationsException": "the usage allocations do not add up to the quantity, or "
    "mix whole and decimal quantities",
    "InvalidTagException": "an allocation tag is invalid; check the tag keys and values",
    "ValidationException": "the request broke a limit of the Metering API model; check the "
    "dimension (1-255 characters) and the quantity (at most 10 digits and 6 decimals)",
    "DisabledApiException": "the Metering API is disabled in this Region; run in a Region "
    "AWS Marketplace supports",
    # The DryRun answer when the caller lacks permission (MeterUsageRequest.DryRun documentation).
    "UnauthorizedException": METER_USAGE_ROLE_REMEDY,
    **credential_remedies(METER_USAGE_ROLE_REMEDY),
}
_USAGE_REJECTED: Mapping[str, str] = {
    "DuplicateRequestException": "another quantity was already recorded for this dimension and "
    "hour (AWS takes one record per dimension per hour per task, and never changes it)",
    "IdempotencyConflictException": "this ClientToken was already used with other parameters: "
    "the hour was already reported with another quantity",
    "TimestampOutOfBoundsException": "MeterUsage takes usage at most 6 hours old and never from "
    "the future; check the timestamp and this host's clock",
}


def classify_meter_usage_error(code: str, status: int, message: str) -> EntrypointError | Transient:
    """Map a MeterUsage error response to what the meter must do about it.

    Throttling and server faults are retried (the same record with the same ClientToken, so a
    retry can never bill twice). A refused record (`UsageRejectedError`) is final for that record;
    configuration and credential errors are final until the operator fixes them.
    """
    shown = one_line(message, 200)
    if code in _RETRYABLE_CODES or status == 429 or status >= 500:
        return Transient(code or f"HTTP {status}", shown)
    if code == "CustomerNotEntitledException":
        return NotEntitledError(
            f"MeterUsage refused: the buyer has no active subscription to this product "
            f"(CustomerNotEntitledException{': ' + shown if shown else ''})",
            remedy="the buyer must subscribe to the product in AWS Marketplace",
        )
    rejected = _USAGE_REJECTED.get(code)
    if rejected is not None:
        return UsageRejectedError(
            f"MeterUsage refused the record: {code}: {shown}",
            code=code,
            remedy=rejected,
        )
    remedy = _METER_USAGE_CONFIGURATION.get(code)
    if remedy is not None:
        return ConfigurationError(f"MeterUsage refused: {code}: {shown}", remedy=remedy)
    return ServiceError(
        f"MeterUsage refused with HTTP {status} {code or '(no error code)'}: {shown}",
        remedy="the usage is kept and sent again later; report this if it persists",
    )


def _parse_rotation(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    raise VerificationError(
        f"answer's PublicKeyRotationTimestamp is {type(value).__name__}, not a timestamp",
        remedy="the workload was not started",
    )


def answer_from_response(response: Mapping[str, Any]) -> RegisterUsageAnswer:
    """Check the parsed response's shape: a non-empty string Signature, an optional timestamp."""
    signature = response.get("Signature")
    if not isinstance(signature, str) or not signature:
        raise VerificationError(
            "the RegisterUsage answer carried no Signature",
            remedy="the workload was not started",
        )
    return RegisterUsageAnswer(
        signature=signature,
        public_key_rotation=_parse_rotation(response.get("PublicKeyRotationTimestamp")),
    )


def classify_oversized(status: int, size: str) -> EntrypointError | Transient:
    """A flood is an answer we refuse to read: a 2xx one is unverifiable (65), an error status
    is classified as its status would be (5xx/429 retried, anything else final)."""
    detail = f"the answer's body ({size}) is over the {MAX_ANSWER_BYTES}-byte cap"
    if status < 300:
        return VerificationError(
            f"the RegisterUsage answer could not be read: {detail}",
            remedy="the workload was not started; check what answers at the Metering endpoint",
        )
    return classify_client_error("", status, detail)


def classify_unparsable(exc: Exception, status: int | None) -> EntrypointError | Transient:
    """An answer botocore could not parse: a 2xx one is unverifiable (65); an error status keeps
    its class (5xx/429 retried, anything else final)."""
    detail = f"{type(exc).__name__}: {one_line(exc, 200)}"
    if status is None or status < 300:
        return VerificationError(
            f"the RegisterUsage answer could not be parsed ({detail})",
            remedy="the workload was not started",
        )
    return classify_client_error("", status, f"unparsable error answer ({detail})")
