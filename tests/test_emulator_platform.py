"""The emulator answers as AWS and the ECS agent do, over real HTTP: authentication errors, the
credentials endpoint's ids, the STS stand-in, and faults on the platform endpoints."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, Emulator
from entrypoint.emulator.faults import Endpoint, Fault

from .support import signed_post

TARGET = "AWSMPMeteringService.RegisterUsage"
BODY = json.dumps({"ProductCode": "prod-test", "PublicKeyVersion": 1}).encode()


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the emulator
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- authentication errors: HTTP 400, as AWS's JSON front end answers them -------------------------


def _wrong_signature(headers: dict[str, str]) -> None:
    value = headers["Authorization"]
    headers["Authorization"] = value[:-4] + ("0000" if not value.endswith("0000") else "1111")


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ({"sign": False}, "MissingAuthenticationTokenException"),
        ({"access_key_id": "AKIANOBODYKNOWS00001"}, "UnrecognizedClientException"),
        ({"tamper": _wrong_signature}, "InvalidSignatureException"),
        ({"service": "sts"}, "InvalidSignatureException"),
    ],
    ids=["unsigned", "unknown-key", "wrong-signature", "other-service"],
)
def test_authentication_errors_are_answered_with_400(
    emulator: Emulator, how: dict[str, Any], code: str
) -> None:
    """aws/aws-sdk-go#1033: the live Metering endpoint answered InvalidSignatureException with
    ``status code: 400``; the emulator answered these with 403."""
    status, answer = signed_post(emulator.url, BODY, TARGET, **how)
    assert (status, answer["__type"]) == (400, code)
    assert emulator.calls()[-1].status == 400


def test_boto3_reads_the_400_as_the_error_it_is(emulator: Emulator) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "meteringmarketplace",
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=EMULATOR_ACCESS_KEY_ID,
        aws_secret_access_key="not-the-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as raised:
        client.register_usage(ProductCode="prod-test", PublicKeyVersion=1)
    error = raised.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- the container credentials endpoint answers only for the task's own id ------------------------


def test_credentials_for_the_tasks_own_id(emulator: Emulator) -> None:
    status, answer = get(emulator.container_credentials_uri)
    assert status == 200
    assert answer["AccessKeyId"].startswith("ASIA")
    assert set(answer) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        ("/ecs/credentials/0123456789abcdef", "InvalidIdInRequest", "Credentials not found"),
        ("/ecs/credentials/", "NoIdInRequest", "No Credential ID in the request"),
    ],
    ids=["unknown-id", "no-id"],
)
def test_other_ids_get_the_ecs_agents_error(
    emulator: Emulator, path: str, code: str, message: str
) -> None:
    """amazon-ecs-agent, ecs-agent/tmds/handlers/v1/credentials_handler.go: HTTP 400 and its
    ErrorMessage, HTTPErrorCode included (the struct has no json tag for it)."""
    status, answer = get(emulator.url + path)
    assert status == 400
    assert answer == {
        "code": code,
        "message": f"CredentialsV2Request: {message}",
        "HTTPErrorCode": 400,
    }


# -- STS AssumeRoleWithWebIdentity -----------------------------------------------------------------


def sts_client(emulator: Emulator) -> Any:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    return boto3.client(
        "sts",
        region_name=emulator.region,
        endpoint_url=emulator.sts_endpoint,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )


def test_sts_issues_credentials_the_metering_api_accepts(emulator: Emulator) -> None:
    import boto3

    answer = sts_client(emulator).assume_role_with_web_identity(
        RoleArn="arn:aws:iam::123456789012:role/marketplace-product",
        RoleSessionName="pod",
        WebIdentityToken="eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    )
    credentials = answer["Credentials"]
    assert answer["AssumedRoleUser"]["Arn"] == (
        "arn:aws:sts::123456789012:assumed-role/marketplace-product/pod"
    )
    metering = boto3.client(
        "meteringmarketplace",
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    assert metering.register_usage(ProductCode="prod-test", PublicKeyVersion=1)["Signature"]
    assert emulator.calls("RegisterUsage")[-1].access_key_id == credentials["AccessKeyId"]


def test_sts_refuses_what_it_does_not_answer(emulator: Emulator) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="InvalidAction"):
        sts_client(emulator).get_caller_identity()


# -- faults on the platform endpoints --------------------------------------------------------------


def test_an_endpoint_fault_replaces_the_answer_then_stops(emulator: Emulator) -> None:
    emulator.faults.inject_endpoint(
        Endpoint.CONTAINER_CREDENTIALS, Fault.BODY, value='HTTP 503 {"x": 1}', times=1
    )
    assert get(emulator.container_credentials_uri) == (503, {"x": 1})
    assert get(emulator.container_credentials_uri)[0] == 200
    assert [c.error for c in emulator.calls()] == ["fault:body", None]


def test_a_flood_is_described_not_stored(emulator: Emulator) -> None:
    emulator.faults.inject_endpoint(Endpoint.TASK_METADATA, Fault.NEGATIVE_CHUNK, value=10**9)
    request = urllib.request.Request(emulator.ecs_metadata_uri + "/task")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the emulator
        assert answer.headers["Transfer-Encoding"] == "chunked"
        answer.fp.read(4096)  # the raw stream, after the "-1" line: spaces of padding
    (call,) = emulator.calls()
    assert call.response == {"fault": "negative-chunk", "bytes": 10**9, "framing": "negative-chunk"}


def test_a_token_fault_has_no_meaning_on_an_endpoint(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="is a RegisterUsage fault, not one for sts"):
        emulator.faults.inject_endpoint(Endpoint.STS, Fault.FOREIGN_KEY)


def test_clearing_every_plan_clears_the_endpoints_too(emulator: Emulator) -> None:
    emulator.faults.inject_endpoint(Endpoint.IMDS_TOKEN, Fault.RESET)
    emulator.faults.clear()
    request = urllib.request.Request(  # noqa: S310 - the emulator
        emulator.imds_endpoint + "latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the emulator
        assert answer.status == 200
