"""The emulator speaks the Metering protocol to an unmodified AWS SDK (boto3)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from entrypoint import verify_signature
from entrypoint.emulator import (
    EMULATOR_ACCESS_KEY_ID,
    EMULATOR_SECRET_ACCESS_KEY,
    Emulator,
    ProductBehavior,
)
from entrypoint.emulator.cli import parse_product

from .conftest import PRODUCT
from .support import signed_post


def client(emulator: Emulator, region: str | None = None) -> Any:
    return boto3.client(
        "meteringmarketplace",
        region_name=region or emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=EMULATOR_ACCESS_KEY_ID,
        aws_secret_access_key=EMULATOR_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_register_usage_signs_a_token_our_verifier_accepts(emulator: Emulator) -> None:
    answer = client(emulator).register_usage(
        ProductCode=PRODUCT, PublicKeyVersion=1, Nonce="nonce-1"
    )
    verified = verify_signature(
        answer["Signature"],
        product_code=PRODUCT,
        public_key_version=1,
        nonce="nonce-1",
        public_key=emulator.public_key(PRODUCT, 1),
    )
    assert verified.product_code == PRODUCT
    record = emulator.calls()[0]
    assert (record.operation, record.status, record.error) == ("RegisterUsage", 200, None)
    assert record.nonce == "nonce-1"


@pytest.mark.parametrize(
    ("behavior", "code", "status"),
    [
        (ProductBehavior(outcome="not-entitled"), "CustomerNotEntitledException", 400),  # type: ignore[arg-type]
        (ProductBehavior(outcome="platform-not-supported"), "PlatformNotSupportedException", 400),  # type: ignore[arg-type]
        (ProductBehavior(outcome="disabled-api"), "DisabledApiException", 400),  # type: ignore[arg-type]
        (ProductBehavior(throttle=1), "ThrottlingException", 400),
        (ProductBehavior(server_errors=1), "InternalServiceErrorException", 500),
    ],
)
def test_error_answers(
    emulator: Emulator, behavior: ProductBehavior, code: str, status: int
) -> None:
    emulator.state.products[PRODUCT] = behavior
    with pytest.raises(ClientError) as caught:
        client(emulator).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_unknown_product_and_version(emulator: Emulator) -> None:
    with pytest.raises(ClientError, match="InvalidProductCodeException"):
        client(emulator).register_usage(ProductCode="prod-nope", PublicKeyVersion=1)
    with pytest.raises(ClientError, match="InvalidPublicKeyVersionException"):
        client(emulator).register_usage(ProductCode=PRODUCT, PublicKeyVersion=9)


def test_signed_for_another_region(emulator: Emulator) -> None:
    with pytest.raises(ClientError, match="InvalidRegionException"):
        client(emulator, region="eu-west-1").register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)


def test_countdowns_run_out(emulator: Emulator) -> None:
    emulator.configure(PRODUCT, throttle=2)
    metering = client(emulator)
    for _ in range(2):
        with pytest.raises(ClientError, match="ThrottlingException"):
            metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert "Signature" in metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)


def test_rotation_timestamp(emulator: Emulator) -> None:
    from datetime import UTC, datetime

    when = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    emulator.configure(PRODUCT, rotation=when)
    answer = client(emulator).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert answer["PublicKeyRotationTimestamp"] == when


def _raw(emulator: Emulator, body: bytes, target: str, *, sign: bool = True) -> tuple[int, Any]:
    status, answer = signed_post(emulator.url, body, target, sign=sign)
    return status, answer


def test_protocol_errors(emulator: Emulator) -> None:
    target = "AWSMPMeteringService.RegisterUsage"
    serialization = "com.amazon.coral.service#SerializationException"
    assert _raw(emulator, b"{not json", target) == (400, {"__type": serialization})
    assert _raw(emulator, b"[]", target)[1]["__type"] == serialization
    assert _raw(emulator, b"{}", "AWSMPMeteringService.Nope") == (
        400,
        {"__type": "com.amazon.coral.service#UnknownOperationException"},
    )
    status, body = _raw(emulator, b"{}", target, sign=False)
    assert (status, body["__type"]) == (400, "MissingAuthenticationTokenException")
    validation = "com.amazon.coral.validate#ValidationException"
    status, body = _raw(emulator, b'{"ProductCode": "prod-test", "PublicKeyVersion": 0}', target)
    assert (status, body["__type"]) == (400, validation)
    status, body = _raw(emulator, b'{"PublicKeyVersion": 1}', target)
    assert (status, body["__type"]) == (400, validation)
    nonce = json.dumps({"ProductCode": "prod-test", "PublicKeyVersion": 1, "Nonce": "n" * 256})
    assert _raw(emulator, nonce.encode(), target)[1]["__type"] == validation


def test_write_keys_lays_out_the_keys_directory(emulator: Emulator, tmp_path: Any) -> None:
    from entrypoint import load_trust_store

    emulator.configure("prod-two", key_versions=(1, 2))
    store = load_trust_store(emulator.write_keys(tmp_path / "keys"))
    assert store.describe() == "prod-test (v1), prod-two (v1, v2)"
    assert (tmp_path / "keys" / "prod-two" / "v2.pem").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("p", ("p", {})),
        ("p:not-entitled", ("p", {"outcome": "not-entitled"})),
        ("p:throttle=3,server-error=2", ("p", {"throttle": 3, "server_errors": 2})),
        ("p:versions=1+2,latency=0.5", ("p", {"key_versions": (1, 2), "latency": 0.5})),
    ],
)
def test_product_spec(spec: str, expected: tuple[str, dict[str, object]]) -> None:
    assert parse_product(spec) == expected


@pytest.mark.parametrize("spec", ["", ":x", "p:teleport", "p:throttle=x", "p:bogus=1"])
def test_bad_product_spec(spec: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the CLI turns any of these into a usage error
        parse_product(spec)
