"""Hostile credential and metadata answers, through the real console script: each one classified.

An STS answer with an external entity, an entity-expansion bomb or nesting 3,000 deep, a container
credentials answer of the wrong types or 3,000 nested arrays, ECS task metadata nested 3,000 deep:
each reached a traceback (exit 70) on the botocore path. Now each is a transient fault (75, and
asked again on the next attempt) or a configuration error (78), with one line of diagnosis. XML
with a DOCTYPE is refused before botocore parses it (its parser, xml.etree on expat, expands
internal entities; expat's own amplification limit stops the bomb, but no AWS answer has a DTD).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator
from entrypoint.emulator.faults import Endpoint, Fault

from .support import Listener, Run, base_env, run_cli

NO_KEYS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
ROLE = "arn:aws:iam::123456789012:role/marketplace-product"
STS = "https://sts.amazonaws.com/doc/2011-06-15/"


def start(
    keys_dir: Path, env: dict[str, str], tmp_path: Path, deadline: str = "2"
) -> tuple[Run, Path]:
    report = tmp_path / "started"
    command = ["--keys-dir", str(keys_dir), "--deadline", deadline, "--", "touch", str(report)]
    return run_cli(command, env), report


def assert_refused(run: Run, report: Path, code: ExitCode, *fragments: str) -> None:
    assert run.returncode == code, run.stderr
    assert not report.exists(), "the workload started"
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    for fragment in fragments:
        assert fragment in run.last_line, run.last_line


def irsa(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cHJvZCJ9.c2ln")
    return base_env(
        emulator,
        **NO_KEYS,
        AWS_ROLE_ARN=ROLE,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
        AWS_ENDPOINT_URL_STS=emulator.sts_endpoint,
    )


def container(emulator: Emulator, uri: str | None = None) -> dict[str, str]:
    full_uri = uri or emulator.container_credentials_uri
    return base_env(emulator, **NO_KEYS, AWS_CONTAINER_CREDENTIALS_FULL_URI=full_uri)


def nested(depth: int = 3000) -> str:
    return "<a>" * depth + "</a>" * depth


def laughs(levels: int = 9) -> str:
    """The billion laughs: each entity ten of the one before."""
    entities = '<!ENTITY l0 "ha">' + "".join(
        f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, levels + 1)
    )
    return f'<?xml version="1.0"?><!DOCTYPE r [{entities}]><r>&l{levels};</r>'


def credentials_xml(inner: str) -> str:
    return (
        f'<AssumeRoleWithWebIdentityResponse xmlns="{STS}"><AssumeRoleWithWebIdentityResult>'
        f"{inner}</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
    )


# -- STS (IRSA) ------------------------------------------------------------------------------------

DTD = "XML answer declares a DOCTYPE or an ENTITY (no AWS answer does)"
STS_ANSWERS = [
    (
        "external-entity",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + credentials_xml("&x;"),
        DTD,
    ),
    ("entity-bomb", laughs(), DTD),
    (
        # An internal entity botocore would expand into the answer it hands on.
        "internal-entity",
        '<!DOCTYPE r [<!ENTITY k "ASIAFORGED">]>'
        + credentials_xml("<Credentials><AccessKeyId>&k;</AccessKeyId></Credentials>"),
        DTD,
    ),
    ("nested-3000", nested(), "CredentialAnswerUnusable: the credentials answer is not what"),
    ("no-credentials", credentials_xml(""), "(KeyError: 'Credentials')"),
    (
        "no-expiration",
        credentials_xml("<Credentials><AccessKeyId>ASIAX</AccessKeyId></Credentials>"),
        "(KeyError: 'Expiration')",
    ),
    ("not-xml", "{}", "CredentialAnswerUnparsable: STS's answer could not be parsed"),
]


@pytest.mark.parametrize(
    ("body", "fragment"), [case[1:] for case in STS_ANSWERS], ids=[case[0] for case in STS_ANSWERS]
)
def test_a_hostile_sts_answer_is_a_transient_fault(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, body: str, fragment: str
) -> None:
    emulator.faults.inject_endpoint(Endpoint.STS, Fault.BODY, value=f"HTTP 200 {body}")
    run, report = start(keys_dir, irsa(emulator, tmp_path), tmp_path)
    assert_refused(run, report, ExitCode.RETRIES_EXHAUSTED, "last error: Credential", fragment)
    assert emulator.calls("RegisterUsage") == []


def test_sts_is_asked_again_after_a_hostile_answer(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """botocore caches an STS answer before it reads it, so a malformed one failed every retry
    without asking STS again; each attempt now starts from a fresh session."""
    emulator.faults.inject_endpoint(
        Endpoint.STS, Fault.BODY, value=f"HTTP 200 {credentials_xml('')}", times=1
    )
    run, report = start(keys_dir, irsa(emulator, tmp_path), tmp_path, deadline="10")
    assert run.returncode == 0, run.stderr
    assert report.exists()
    assert [c.error for c in emulator.calls() if c.operation == "POST /sts"] == ["fault:body", None]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (STS_ANSWERS[0][1], DTD),
        (credentials_xml(""), "(KeyError: 'Credentials')"),
    ],
    ids=["external-entity", "no-credentials"],
)
def test_a_hostile_sts_answer_while_botocore_refreshes_mid_call_is_a_credential_fault(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, body: str, fragment: str
) -> None:
    """Credentials that expire within botocore's 10-minute mandatory window are refreshed while
    RegisterUsage is signed: that STS answer was read as RegisterUsage's (76 "failed
    unexpectedly", or 65 for a flood)."""
    emulator.platform.configure(credentials_lifetime=300)
    emulator.faults.inject_endpoint(Endpoint.STS, Fault.BODY, value=f"HTTP 200 {body}", after=1)
    run, report = start(keys_dir, irsa(emulator, tmp_path), tmp_path)
    assert_refused(run, report, ExitCode.RETRIES_EXHAUSTED, "last error: Credential", fragment)
    sts = [c.error for c in emulator.calls() if c.operation == "POST /sts"]
    assert sts[:2] == [None, "fault:body"], sts
    assert emulator.calls("RegisterUsage") == []


# -- the container credentials endpoint ------------------------------------------------------------

CONTAINER_ANSWERS = [
    ("no-token", '{"AccessKeyId": "ASIAX", "SecretAccessKey": "s", "Expiration": "x"}', "'Token'"),
    (
        "wrong-types",
        '{"AccessKeyId": 1, "SecretAccessKey": [], "Token": {}, "Expiration": 5}',
        "TypeError",
    ),
    (
        "wrong-types-valid-expiration",
        (
            '{"AccessKeyId": 1, "SecretAccessKey": 2, "Token": 3,'
            ' "Expiration": "2030-01-01T00:00:00Z"}'
        ),
        "access key, secret key or token is not a string",
    ),
    ("nested-3000", "[" * 3000 + "]" * 3000, "RecursionError"),
    ("not-an-object", "[1, 2]", "TypeError"),
]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [case[1:] for case in CONTAINER_ANSWERS],
    ids=[case[0] for case in CONTAINER_ANSWERS],
)
def test_a_hostile_container_credentials_answer_is_a_transient_fault(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, body: str, fragment: str
) -> None:
    emulator.faults.inject_endpoint(
        Endpoint.CONTAINER_CREDENTIALS, Fault.BODY, value=f"HTTP 200 {body}"
    )
    run, report = start(keys_dir, container(emulator), tmp_path)
    assert_refused(
        run, report, ExitCode.RETRIES_EXHAUSTED, "last error: CredentialAnswerUnusable", fragment
    )


def test_a_container_credentials_answer_that_is_not_utf8_is_a_transient_fault(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """botocore decodes it itself and let UnicodeDecodeError escape; it was read as a refused
    configuration (78, "the credentials configuration was refused")."""
    emulator.faults.inject_endpoint(Endpoint.CONTAINER_CREDENTIALS, Fault.GZIP, value=4096)
    run, report = start(keys_dir, container(emulator), tmp_path)
    assert_refused(run, report, ExitCode.RETRIES_EXHAUSTED, "UnicodeDecodeError")


def test_a_container_credentials_answer_is_asked_again_after_a_hostile_one(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.faults.inject_endpoint(
        Endpoint.CONTAINER_CREDENTIALS, Fault.BODY, value="HTTP 200 [1]", times=1
    )
    run, report = start(keys_dir, container(emulator), tmp_path, deadline="10")
    assert run.returncode == 0, run.stderr
    assert report.exists()


def test_an_unknown_credentials_id_fails_at_once_as_on_ecs(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """A wrong AWS_CONTAINER_CREDENTIALS_RELATIVE_URI. botocore appends it to
    http://169.254.170.2, which a test cannot listen on, so the same path is given whole in
    AWS_CONTAINER_CREDENTIALS_FULL_URI. The emulator answers as the ECS agent does (400,
    InvalidIdInRequest), and a 4xx is the request's fault: 78 at once, not retried for 30
    minutes. (The emulator handed any id the task's credentials.)"""
    uri = f"{emulator.url}/ecs/credentials/not-this-task"
    run, report = start(keys_dir, container(emulator, uri), tmp_path, deadline="60")
    assert_refused(
        run,
        report,
        ExitCode.CONFIGURATION,
        "the container credentials endpoint refused the request with HTTP 400",
        '"code": "InvalidIdInRequest", "message": "CredentialsV2Request: Credentials not found"',
        "do not set or change them in the task definition",
    )
    assert emulator.calls("RegisterUsage") == []


def test_a_wrong_authorization_token_fails_at_once(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(credentials_token="the-agent-token")
    env = container(emulator) | {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "not-the-agent-token"}
    run, report = start(keys_dir, env, tmp_path, deadline="60")
    assert_refused(run, report, ExitCode.CONFIGURATION, "refused the request with HTTP 401")
    assert "not-the-agent-token" not in run.stderr


@pytest.fixture
def listener() -> Iterator[Listener]:
    named = Listener()
    yield named
    named.close()


def test_a_full_uri_whose_host_parsers_disagree_on_is_refused(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, listener: Listener
) -> None:
    """``http://name:P1\\@127.0.0.2:P2/creds``: botocore's loopback check sees 127.0.0.2 while
    urllib3 connects to ``name`` and sends it the authorization token. Here ``name`` is a live
    listener: it sees no connection, and the token is never shown."""
    uri = f"http://127.0.0.1:{listener.port}\\@127.0.0.2:{emulator.port}/creds"
    env = container(emulator, uri) | {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "task-secret"}
    run, report = start(keys_dir, env, tmp_path)
    assert_refused(
        run,
        report,
        ExitCode.CONFIGURATION,
        "configuration error: AWS_CONTAINER_CREDENTIALS_FULL_URI=",
        "has credentials or a backslash in its host part",
    )
    assert listener.connections == 0, "the request (and its token) left for the named host"
    assert "task-secret" not in run.stderr
    assert emulator.calls() == []


# -- ECS task metadata -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("[" * 3000 + "]" * 3000, "task metadata is not JSON"),
        ('{"a":' * 3000 + "1" + "}" * 3000, "task metadata is not JSON"),
        ('{"TaskARN": 7, "AvailabilityZone": []}', "task metadata has neither a TaskARN nor"),
        ("[]", "task metadata is not a JSON object"),
    ],
    ids=["nested-arrays", "nested-objects", "wrong-types", "not-an-object"],
)
def test_hostile_task_metadata_leaves_no_region(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, body: str, why: str
) -> None:
    emulator.faults.inject_endpoint(Endpoint.TASK_METADATA, Fault.BODY, value=f"HTTP 200 {body}")
    env = base_env(
        emulator, AWS_REGION=None, ECS_CONTAINER_METADATA_URI_V4=emulator.ecs_metadata_uri
    )
    run, report = start(keys_dir, env, tmp_path)
    assert_refused(
        run, report, ExitCode.CONFIGURATION, "no AWS Region found", f"ECS task metadata: {why}"
    )
    assert emulator.calls("RegisterUsage") == []
