"""The lean client against botocore: the same signatures, endpoints and outcomes.

Every end-to-end test already runs the lean client against the emulator, which recomputes each
signature with botocore's signer; these tests pin the pieces one by one, including a run of the
platform scenarios with the client forced to botocore, so both paths stay equivalent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint import VerificationError
from entrypoint.aws.client import _answer, parse_error
from entrypoint.aws.eligibility import endpoint_for, lean_unsupported
from entrypoint.aws.sigv4 import sign
from entrypoint.emulator import Emulator

from .support import base_env, run_cli

WHEN = datetime(2026, 11, 21, 12, 34, 56, tzinfo=UTC)
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)


def botocore_authorization(
    url: str, headers: dict[str, str], body: bytes, token: str | None, region: str, service: str
) -> str:
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "secret/key+", token), service, region)
    with patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        signer.add_auth(request)
    return str(request.headers["Authorization"])


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=512),
    target=_header_value,
    token=st.none() | _header_value,
    port=st.sampled_from([None, 443, 8443]),
    region=st.sampled_from(["us-east-1", "eu-west-3", "cn-north-1"]),
)
def test_signature_matches_botocore(
    body: bytes, target: str, token: str | None, port: int | None, region: str
) -> None:
    url = f"https://metering.example.com{'' if port is None else f':{port}'}/"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    ours = sign(
        method="POST",
        url=url,
        headers={**headers, "User-Agent": "never-signed"},
        body=body,
        access_key_id="AKIDEXAMPLE",
        secret_access_key="secret/key+",
        session_token=token,
        region=region,
        service="aws-marketplace",
        now=WHEN,
    )
    expected = botocore_authorization(url, headers, body, token, region, "aws-marketplace")
    assert ours["Authorization"] == expected


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1", "il-central-1"]
)
@pytest.mark.parametrize("service", ["meteringmarketplace", "sts"])
def test_endpoints_match_botocore(region: str, service: str) -> None:
    import botocore.session

    client = botocore.session.get_session().create_client(
        service, region_name=region, aws_access_key_id="a", aws_secret_access_key="b"
    )
    assert endpoint_for(service, region, {}) == client.meta.endpoint_url


@pytest.mark.parametrize("region", ["us-iso-east-1", "eu-isoe-west-1", "eusc-de-east-1"])
def test_isolated_partitions_go_to_botocore(region: str) -> None:
    assert endpoint_for("meteringmarketplace", region, {}) is None
    assert lean_unsupported(region, {"HOME": "/nonexistent"}) == (
        f"{region} is not in a standard partition"
    )


def test_endpoint_overrides() -> None:
    env = {"AWS_ENDPOINT_URL": "http://global", "AWS_ENDPOINT_URL_STS": "http://sts-only"}
    assert endpoint_for("sts", "us-east-1", env) == "http://sts-only"
    assert endpoint_for("meteringmarketplace", "us-east-1", env) == "http://global"
    env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
    assert endpoint_for("sts", "us-east-1", env) == "https://sts.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"MARKETPLACE_AWS_CLIENT": "botocore"}, "MARKETPLACE_AWS_CLIENT=botocore"),
        ({"AWS_PROFILE": "prod"}, "AWS_PROFILE is set"),
        ({"https_proxy": "http://proxy:3128"}, "proxy settings are present"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "proxy settings are present"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "AWS_USE_FIPS_ENDPOINT is set"),
        ({"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, "AWS_STS_REGIONAL_ENDPOINTS=legacy"),
        ({"BOTO_CONFIG": "/etc/boto"}, "BOTO_CONFIG is set"),
    ],
)
def test_what_sends_work_to_botocore(env: dict[str, str], reason: str) -> None:
    assert lean_unsupported("us-east-1", {"HOME": "/nonexistent", **env}) == reason


def test_config_files_with_content_send_work_to_botocore(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(config)}
    assert lean_unsupported("us-east-1", env) is None
    config.write_text("[default]\nregion = us-east-1\n")
    assert lean_unsupported("us-east-1", env) == f"{config} exists"
    assert (
        lean_unsupported("us-east-1", {"HOME": "/nonexistent", "AWS_CONFIG_FILE": "/dev/null"})
        is None
    )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            b'{"__type":"com.amazon#ThrottlingException","message":"slow"}',
            "ThrottlingException",
            "slow",
        ),
        (
            b'{"__type":"CustomerNotEntitledException:http://x","Message":"no"}',
            "CustomerNotEntitledException",
            "no",
        ),
        (b"<html>busy</html>", "", "<html>busy</html>"),
        (b"", "", ""),
        (b"[1]", "", ""),
    ],
)
def test_error_parsing(body: bytes, code: str, message: str) -> None:
    """As botocore's JSON parser, except that an answer without ``__type`` has no code (botocore
    puts the status there); the classification then goes by the HTTP status."""
    assert parse_error(body) == (code, message)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "is not JSON"),
        (b"[]", "is not a JSON object"),
        (b"{}", "carried no Signature"),
        (b'{"Signature": 5}', "carried no Signature"),
        (
            b'{"Signature": "a.b.c", "PublicKeyRotationTimestamp": "soon"}',
            "is str, not a timestamp",
        ),
        (b'{"Signature": "a.b.c", "PublicKeyRotationTimestamp": 1e300}', "out of range"),
        (b'{"Signature": "a.b.c", "PublicKeyRotationTimestamp": true}', "is bool"),
    ],
)
def test_malformed_answers_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        _answer(body)


def test_rotation_timestamp_is_read_as_epoch_seconds() -> None:
    answer = _answer(
        json.dumps({"Signature": "a.b.c", "PublicKeyRotationTimestamp": 1.8e9}).encode()
    )
    assert answer.public_key_rotation == datetime.fromtimestamp(1.8e9, tz=UTC)


def test_check_names_the_client_path(emulator: Emulator, keys_dir: Path) -> None:
    result = run_cli(["check", "--keys-dir", str(keys_dir)], base_env(emulator))
    assert "client       lean (standard library)" in result.stdout
    env = base_env(emulator, MARKETPLACE_AWS_CLIENT="botocore")
    result = run_cli(["check", "--keys-dir", str(keys_dir)], env)
    assert "client       botocore (MARKETPLACE_AWS_CLIENT=botocore)" in result.stdout


def test_oversized_answer_is_refused_unread(emulator: Emulator) -> None:
    """A hostile endpoint's flood is not read into memory: the cap applies before the body."""
    from entrypoint.aws import transport

    with pytest.raises(transport.TransportError, match="EndpointConnectionError"):
        transport.request(
            "GET", "http://127.0.0.1:9/", headers={}, connect_timeout=1, read_timeout=1, max_bytes=1
        )
    answer = transport.request(
        "GET",
        emulator.url + "/ecs/v4/x/task",
        headers={},
        connect_timeout=5,
        read_timeout=5,
        max_bytes=10,
    )
    assert answer.truncated
    assert answer.body == b""  # Content-Length over the cap: nothing read
