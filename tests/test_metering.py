"""How each Metering answer is classified: retry, stop with which code, or refuse the answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from entrypoint import (
    ConfigurationError,
    ExitCode,
    NotEntitledError,
    PlatformNotSupportedError,
    ServiceError,
    UsageRejectedError,
    VerificationError,
)
from entrypoint.answers import (
    Transient,
    answer_from_response,
    classify_client_error,
    classify_meter_usage_error,
)
from entrypoint.metering import StaticCredentials, _quantity_parameter

CASES: list[tuple[str, int, type[Exception], ExitCode | None]] = [
    ("ThrottlingException", 400, Transient, None),
    ("InternalServiceErrorException", 500, Transient, None),
    ("ServiceUnavailable", 503, Transient, None),
    ("", 502, Transient, None),
    ("SomethingNew", 504, Transient, None),
    ("", 429, Transient, None),
    ("CustomerNotEntitledException", 400, NotEntitledError, ExitCode.NOT_ENTITLED),
    (
        "PlatformNotSupportedException",
        400,
        PlatformNotSupportedError,
        ExitCode.PLATFORM_NOT_SUPPORTED,
    ),
    ("InvalidProductCodeException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidPublicKeyVersionException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidRegionException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("DisabledApiException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("AccessDeniedException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("UnrecognizedClientException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("ExpiredTokenException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidSignatureException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("SomethingNew", 400, ServiceError, ExitCode.SERVICE_ERROR),
    ("", 404, ServiceError, ExitCode.SERVICE_ERROR),
]


@pytest.mark.parametrize(("code", "status", "kind", "exit_code"), CASES)
def test_classification(code: str, status: int, kind: type, exit_code: ExitCode | None) -> None:
    outcome = classify_client_error(code, status, "message")
    assert type(outcome) is kind
    if exit_code is not None:
        assert outcome.exit_code == exit_code  # type: ignore[union-attr]


def test_access_denied_names_the_iam_action() -> None:
    outcome = classify_client_error("AccessDeniedException", 400, "not authorized")
    assert isinstance(outcome, ConfigurationError)
    assert "aws-marketplace:RegisterUsage" in outcome.diagnosis()


def test_service_message_is_kept_on_one_bounded_line() -> None:
    outcome = classify_client_error("SomethingNew", 400, "line1\nline2" + "x" * 5000)
    assert "\n" not in outcome.diagnosis()  # type: ignore[union-attr]
    assert len(outcome.diagnosis()) < 700  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "response", [{}, {"Signature": ""}, {"Signature": None}, {"Signature": 5}, {"message": "x"}]
)
def test_answer_without_signature_is_refused(response: dict[str, object]) -> None:
    with pytest.raises(VerificationError, match="carried no Signature"):
        answer_from_response(response)


def test_rotation_timestamp_is_normalised_to_utc() -> None:
    when = datetime(2027, 1, 1, tzinfo=UTC)
    answer = answer_from_response({"Signature": "a.b.c", "PublicKeyRotationTimestamp": when})
    assert answer.public_key_rotation == when


def test_rotation_timestamp_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(VerificationError, match="PublicKeyRotationTimestamp is str"):
        answer_from_response({"Signature": "a.b.c", "PublicKeyRotationTimestamp": "soon"})


def test_static_credentials_never_show_the_secret() -> None:
    creds = StaticCredentials("AKIAEXAMPLE", "very-secret")
    assert "very-secret" not in repr(creds)
    assert "very-secret" not in str(creds)


METER_CASES: list[tuple[str, int, type[Exception], ExitCode | None]] = [
    ("ThrottlingException", 400, Transient, None),
    ("InternalServiceErrorException", 500, Transient, None),
    ("", 503, Transient, None),
    ("CustomerNotEntitledException", 400, NotEntitledError, ExitCode.NOT_ENTITLED),
    ("DuplicateRequestException", 400, UsageRejectedError, ExitCode.SERVICE_ERROR),
    ("IdempotencyConflictException", 400, UsageRejectedError, ExitCode.SERVICE_ERROR),
    ("TimestampOutOfBoundsException", 400, UsageRejectedError, ExitCode.SERVICE_ERROR),
    ("InvalidProductCodeException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidUsageDimensionException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidEndpointRegionException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidUsageAllocationsException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("InvalidTagException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("ValidationException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("UnauthorizedException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("AccessDeniedException", 400, ConfigurationError, ExitCode.CONFIGURATION),
    ("SomethingNew", 400, ServiceError, ExitCode.SERVICE_ERROR),
]


@pytest.mark.parametrize(("code", "status", "kind", "exit_code"), METER_CASES)
def test_meter_usage_classification(
    code: str, status: int, kind: type, exit_code: ExitCode | None
) -> None:
    outcome = classify_meter_usage_error(code, status, "message")
    assert type(outcome) is kind
    if exit_code is not None:
        assert outcome.exit_code == exit_code  # type: ignore[union-attr]
    if isinstance(outcome, UsageRejectedError):
        assert outcome.code == code


def test_meter_usage_access_denied_names_the_meter_usage_action() -> None:
    outcome = classify_meter_usage_error("AccessDeniedException", 400, "not authorized")
    assert isinstance(outcome, ConfigurationError)
    assert "aws-marketplace:MeterUsage" in outcome.diagnosis()


def _old_model_client() -> object:
    """Just enough of a botocore client whose model predates UsageQuantityAsDecimal."""
    from types import SimpleNamespace

    shape = SimpleNamespace(members={"UsageQuantity": None})
    model = SimpleNamespace(operation_model=lambda _name: SimpleNamespace(input_shape=shape))
    return SimpleNamespace(meta=SimpleNamespace(service_model=model))


def test_an_old_botocore_gets_whole_quantities_as_usage_quantity() -> None:
    client = _old_model_client()
    assert _quantity_parameter(client, "17") == {"UsageQuantity": 17}
    assert _quantity_parameter(client, "17.000") == {"UsageQuantity": 17}
    with pytest.raises(ConfigurationError, match=r"cannot send the fractional quantity 1\.5"):
        _quantity_parameter(client, "1.5")
