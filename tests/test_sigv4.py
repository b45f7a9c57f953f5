"""The emulator checks SigV4 like AWS: each way a request can be badly signed gets AWS's error."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from entrypoint.emulator import Emulator, Principal

from .conftest import PRODUCT
from .support import signed_post

TARGET = "AWSMPMeteringService.RegisterUsage"
BODY = json.dumps({"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": "n"}).encode()


def post(emulator: Emulator, **kwargs: object) -> tuple[int, str]:
    status, answer = signed_post(emulator.url, BODY, TARGET, **kwargs)  # type: ignore[arg-type]
    return status, answer.get("__type", "Signature" if "Signature" in answer else "?")


def test_correctly_signed_request_is_answered(emulator: Emulator) -> None:
    assert post(emulator) == (200, "Signature")


def _set(name: str, value: str) -> Callable[[dict[str, str]], None]:
    def change(headers: dict[str, str]) -> None:
        headers[name] = value

    return change


def _drop(name: str) -> Callable[[dict[str, str]], None]:
    def change(headers: dict[str, str]) -> None:
        headers.pop(name, None)

    return change


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"sign": False}, 403, "MissingAuthenticationTokenException"),
        ({"access_key_id": "AKIAUNKNOWNUNKNOWN00"}, 403, "UnrecognizedClientException"),
        ({"secret_access_key": "wrong"}, 403, "InvalidSignatureException"),
        ({"service": "execute-api"}, 403, "InvalidSignatureException"),
        ({"tamper": _set("Authorization", "Bearer abc")}, 400, "IncompleteSignatureException"),
        ({"tamper": _set("X-Amz-Date", "20200101T000000Z")}, 403, "InvalidSignatureException"),
        ({"tamper": _drop("X-Amz-Date")}, 400, "IncompleteSignatureException"),
        (
            {"tamper": _set("X-Amz-Target", "AWSMPMeteringService.MeterUsage")},
            403,
            "InvalidSignatureException",
        ),
        ({"region": "eu-west-1"}, 400, "InvalidRegionException"),
    ],
    ids=[
        "unsigned",
        "unknown access key",
        "wrong secret",
        "scoped to another service",
        "not sigv4",
        "date changed after signing",
        "no date",
        "signed header changed",
        "signed for another region",
    ],
)
def test_badly_signed_requests_get_aws_errors(
    emulator: Emulator, kwargs: dict[str, object], status: int, code: str
) -> None:
    assert post(emulator, **kwargs) == (status, code)
    assert emulator.calls()[0].error == code


def test_tampered_body_is_refused(emulator: Emulator) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY

    request = AWSRequest(
        method="POST", url=emulator.url + "/", data=BODY, headers={"X-Amz-Target": TARGET}
    )
    SigV4Auth(
        Credentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY),
        "aws-marketplace",
        "us-east-1",
    ).add_auth(request)
    import urllib.error
    import urllib.request

    other = BODY.replace(b'"n"', b'"m"')
    raw = urllib.request.Request(  # noqa: S310
        emulator.url + "/", data=other, headers=dict(request.headers.items()), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(raw, timeout=10)  # noqa: S310
    assert json.loads(caught.value.read())["__type"] == "InvalidSignatureException"


def test_session_token_must_match(emulator: Emulator) -> None:
    emulator.add_principal(
        Principal("ASIATEMPORARY0000001", "temp-secret", session_token="the-token")
    )
    good = {"access_key_id": "ASIATEMPORARY0000001", "secret_access_key": "temp-secret"}
    assert post(emulator, **good, session_token="the-token") == (200, "Signature")
    assert post(emulator, **good, session_token="other") == (403, "UnrecognizedClientException")
    assert post(emulator, **good) == (403, "UnrecognizedClientException")


def test_principal_without_the_policy_is_denied(emulator: Emulator) -> None:
    emulator.add_principal(
        Principal("AKIADENIED0000000001", "s", arn="arn:aws:iam::1:user/nobody", allowed=False)
    )
    status, answer = signed_post(
        emulator.url, BODY, TARGET, access_key_id="AKIADENIED0000000001", secret_access_key="s"
    )
    assert (status, answer["__type"]) == (400, "AccessDeniedException")
    assert "not authorized to perform: aws-marketplace:RegisterUsage" in answer["message"]


def test_resolvers_add_credentials_issued_elsewhere(emulator: Emulator) -> None:
    issued = Principal("ASIAFROMSTS000000001", "sts-secret", session_token="sts-token")
    emulator.add_credential_resolver(lambda akid: issued if akid == issued.access_key_id else None)
    assert post(
        emulator,
        access_key_id=issued.access_key_id,
        secret_access_key="sts-secret",
        session_token="sts-token",
    ) == (200, "Signature")


def test_signature_checking_can_be_turned_off() -> None:
    with Emulator(
        products={PRODUCT: __import__("entrypoint").emulator.ProductBehavior()},
        verify_signatures=False,
    ) as em:
        assert post(em, access_key_id="AKIAANYTHING00000000", secret_access_key="x") == (
            200,
            "Signature",
        )
        assert post(em, sign=False) == (403, "MissingAuthenticationTokenException")
