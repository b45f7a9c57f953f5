"""The emulator checks requests against the API model and answers as AWS's JSON front end does.

Each test names one rule. Requests go over HTTP through boto3 (``validate=False`` switches off
botocore's own checks where they would stop the request first) or, for malformed bodies that no
SDK sends, through raw HTTP. Every assertion is on the error code, HTTP status and message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from entrypoint.emulator import Emulator
from entrypoint.emulator.model import modelled_error, service_model

from .conftest import PRODUCT
from .support import T0, metering_client, signed_post

SERVICE = "com.amazon.coral.service"
VALIDATE = "com.amazon.coral.validate"


def raw(emulator: Emulator, body: bytes, operation: str = "MeterUsage") -> tuple[int, Any]:
    """POST ``body`` as-is, correctly SigV4-signed, so the emulator's validation answers."""
    return signed_post(emulator.url, body, f"AWSMPMeteringService.{operation}")


def error_of(call: Any, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def meter(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ProductCode": PRODUCT,
        "Timestamp": T0,
        "UsageDimension": "users",
        "UsageQuantity": 1,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


# -- the protocol ---------------------------------------------------------------------------------


def test_unknown_operation_is_the_front_ends_unknown_operation_exception(
    emulator: Emulator,
) -> None:
    assert raw(emulator, b"{}", "GetUsage") == (
        400,
        {"__type": f"{SERVICE}#UnknownOperationException"},
    )


@pytest.mark.parametrize("body", [b"{not json", b'{"a": 1', b"\xff\xfe", b""], ids=repr)
def test_a_body_that_is_not_json_is_a_serialization_exception(
    emulator: Emulator, body: bytes
) -> None:
    assert raw(emulator, body) == (400, {"__type": f"{SERVICE}#SerializationException"})


def test_a_body_that_is_not_an_object_is_a_serialization_exception(emulator: Emulator) -> None:
    status, answer = raw(emulator, b"[1, 2]")
    assert (status, answer["__type"]) == (400, f"{SERVICE}#SerializationException")


def test_a_member_of_the_wrong_json_type_is_a_serialization_exception(emulator: Emulator) -> None:
    body = json.dumps({"ProductCode": PRODUCT, "PublicKeyVersion": "1"}).encode()
    status, answer = raw(emulator, body, "RegisterUsage")
    assert (status, answer["__type"]) == (400, f"{SERVICE}#SerializationException")
    assert answer["Message"] == "Unexpected string for member 'publicKeyVersion': expected integer"


def test_true_is_not_a_number(emulator: Emulator) -> None:
    body = json.dumps({"ProductCode": PRODUCT, "PublicKeyVersion": True}).encode()
    assert raw(emulator, body, "RegisterUsage")[1]["__type"] == f"{SERVICE}#SerializationException"


def test_botocore_strips_the_namespace_of_front_end_errors(emulator: Emulator) -> None:
    code, status, _ = error_of(
        metering_client(emulator, validate=False).meter_usage, **meter(ProductCode=7)
    )
    assert (code, status) == ("SerializationException", 400)


# -- the API model's constraints ------------------------------------------------------------------


def test_a_missing_required_member_must_not_be_null(emulator: Emulator) -> None:
    call = metering_client(emulator, validate=False).meter_usage
    assert error_of(call, **meter(UsageDimension=None)) == (
        "ValidationException",
        400,
        (
            "1 validation error detected: Value null at 'usageDimension' failed to satisfy "
            "constraint: Member must not be null"
        ),
    )


def test_a_string_longer_than_the_model_allows(emulator: Emulator) -> None:
    call = metering_client(emulator).meter_usage
    code, status, message = error_of(call, **meter(UsageDimension="d" * 256))
    assert (code, status) == ("ValidationException", 400)
    assert message.endswith(
        "at 'usageDimension' failed to satisfy constraint: Member must have length less than "
        "or equal to 255"
    )


def test_a_string_shorter_than_the_model_allows(emulator: Emulator) -> None:
    call = metering_client(emulator, validate=False).meter_usage
    _, _, message = error_of(call, **meter(UsageDimension=""))
    # Both constraints of UsageDimension (min 1, pattern [\s\S]+) fail, and both are listed.
    assert message == (
        "2 validation errors detected: Value '' at 'usageDimension' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1; Value '' at "
        "'usageDimension' failed to satisfy constraint: Member must satisfy regular expression "
        "pattern: [\\s\\S]+"
    )


def test_a_string_that_breaks_the_model_pattern(emulator: Emulator) -> None:
    call = metering_client(emulator).register_usage
    assert error_of(call, ProductCode="prod test!", PublicKeyVersion=1) == (
        "ValidationException",
        400,
        (
            "1 validation error detected: Value 'prod test!' at 'productCode' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: ^[-a-zA-Z0-9/=:_.@]*$"
        ),
    )


def test_lengths_count_utf16_code_units_as_aws_does(emulator: Emulator) -> None:
    call = metering_client(emulator).meter_usage
    code, _, message = error_of(call, **meter(UsageDimension="\N{SNOWMAN}\U0001f600" * 86))
    assert code == "ValidationException"  # 86 * (1 + 2) = 258 UTF-16 code units
    assert "length less than or equal to 255" in message


@pytest.mark.parametrize(
    ("value", "constraint"),
    [(0, "greater than or equal to 1")],
)
def test_an_integer_below_the_model_range(emulator: Emulator, value: int, constraint: str) -> None:
    call = metering_client(emulator, validate=False).register_usage
    _, _, message = error_of(call, ProductCode=PRODUCT, PublicKeyVersion=value)
    assert message.endswith(
        f"at 'publicKeyVersion' failed to satisfy constraint: Member must have value {constraint}"
    )


def test_an_integer_above_the_model_range(emulator: Emulator) -> None:
    call = metering_client(emulator).meter_usage
    _, _, message = error_of(call, **meter(UsageQuantity=2_147_483_648))
    assert message == (
        "1 validation error detected: Value '2147483648' at 'usageQuantity' failed to satisfy "
        "constraint: Member must have value less than or equal to 2147483647"
    )


@pytest.mark.parametrize("quantity", ["1.1234567", "01", "-1", "1e3", "12345678901"])
def test_a_decimal_quantity_must_match_the_model_pattern(emulator: Emulator, quantity: str) -> None:
    call = metering_client(emulator).meter_usage
    code, _, message = error_of(call, **meter(UsageQuantity=None, UsageQuantityAsDecimal=quantity))
    assert code == "ValidationException"
    assert "at 'usageQuantityAsDecimal' failed to satisfy constraint" in message


def test_a_client_token_longer_than_64(emulator: Emulator) -> None:
    call = metering_client(emulator).meter_usage
    _, _, message = error_of(call, **meter(ClientToken="t" * 65))
    assert (
        "at 'clientToken' failed to satisfy constraint: Member must have length less than "
        "or equal to 64" in message
    )


def test_more_than_25_usage_records(emulator: Emulator) -> None:
    record = {"Timestamp": T0, "Dimension": "users", "CustomerAWSAccountId": "123456789012"}
    call = metering_client(emulator).batch_meter_usage
    _, status, message = error_of(call, ProductCode=PRODUCT, UsageRecords=[record] * 26)
    assert status == 400
    assert message == (
        "1 validation error detected: Value '[26 items]' at 'usageRecords' failed to satisfy "
        "constraint: Member must have length less than or equal to 25"
    )


def test_nested_members_are_named_with_one_based_list_indexes(emulator: Emulator) -> None:
    good = {"Timestamp": T0, "Dimension": "users", "CustomerAWSAccountId": "123456789012"}
    bad = {**good, "Dimension": "d" * 256}
    call = metering_client(emulator).batch_meter_usage
    _, _, message = error_of(call, ProductCode=PRODUCT, UsageRecords=[good, bad])
    assert "at 'usageRecords.2.member.dimension' failed to satisfy constraint" in message


def test_more_than_5_tags_in_an_allocation(emulator: Emulator) -> None:
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(6)]
    allocation = {"AllocatedUsageQuantity": 1, "Tags": tags}
    call = metering_client(emulator).meter_usage
    _, _, message = error_of(call, **meter(UsageAllocations=[allocation]))
    assert (
        "at 'usageAllocations.1.member.tags' failed to satisfy constraint: Member must have "
        "length less than or equal to 5" in message
    )


def test_a_tag_key_outside_the_model_pattern(emulator: Emulator) -> None:
    allocation = {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "team~1", "Value": "v"}]}
    call = metering_client(emulator).meter_usage
    _, _, message = error_of(call, **meter(UsageAllocations=[allocation]))
    assert (
        "at 'usageAllocations.1.member.tags.1.member.key' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern" in message
    )


def test_every_violation_is_listed_and_counted(emulator: Emulator) -> None:
    call = metering_client(emulator, validate=False).meter_usage
    _, _, message = error_of(
        call, **meter(ProductCode="bad code", UsageDimension=None, UsageQuantity=-1)
    )
    assert message.startswith("3 validation errors detected: Value 'bad code' at 'productCode'")
    assert message.count("; Value ") == 2
    assert "Value null at 'usageDimension'" in message
    assert "Value '-1' at 'usageQuantity'" in message


def test_a_long_offending_value_is_shown_truncated(emulator: Emulator) -> None:
    call = metering_client(emulator).meter_usage
    _, _, message = error_of(call, **meter(UsageDimension="d" * 100_000))
    assert len(message) < 600


def test_unknown_members_are_ignored(emulator: Emulator) -> None:
    body = {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Flavour": ["vanilla"]}
    status, answer = raw(emulator, json.dumps(body).encode(), "RegisterUsage")
    assert status == 200
    assert answer["Signature"]


# -- errors come from the model -------------------------------------------------------------------


def test_an_error_an_operation_does_not_declare_is_never_answered() -> None:
    with pytest.raises(AssertionError, match="RegisterUsage does not declare DuplicateRequest"):
        modelled_error("RegisterUsage", "DuplicateRequestException", "no")


@pytest.mark.parametrize("operation", ["RegisterUsage", "MeterUsage", "BatchMeterUsage"])
def test_server_faults_are_500_and_client_errors_400(operation: str) -> None:
    assert modelled_error(operation, "InternalServiceErrorException", "x").status == 500
    assert modelled_error(operation, "InvalidProductCodeException", "x").status == 400


def test_the_model_limits_the_emulator_documents() -> None:
    """The limits README and the meter rely on; a botocore update that moves one fails here."""
    shapes = service_model()
    assert shapes.shape_for("UsageRecordList").metadata == {"min": 0, "max": 25}
    assert shapes.shape_for("TagList").metadata == {"min": 1, "max": 5}
    assert shapes.shape_for("ClientToken").metadata == {"min": 1, "max": 64}
    assert shapes.shape_for("UsageQuantityAsDecimalString").metadata["pattern"] == (
        r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$"
    )
    assert shapes.shape_for("UsageDimension").metadata["max"] == 255
    assert sorted(shapes.operation_names) == [
        "BatchMeterUsage",
        "MeterUsage",
        "RegisterUsage",
        "ResolveCustomer",
    ]
