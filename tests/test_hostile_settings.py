"""Hostile and malformed settings, through the real console script, on the one botocore path.

The buyer writes the task definition, so every AWS variable botocore reads is untrusted. Each case
here once went wrong on one of the two AWS client paths this project had (issue 10): a relative
credentials URI that named another host (and would have been sent the authorization token), ports
and IPv6 literals botocore or urllib3 choke on late, a non-ASCII endpoint, an authorization token
no HTTP header can carry, error answers nested too deeply for a JSON parser, and success statuses
other than 200. Now each ends the way botocore's handling implies: a malformed setting is a
configuration error at once (78, naming the variable, before any call), an answer is classified
by its status, and a genuine answer verifies whatever 2xx it came with. Never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint import ConfigurationError, ExitCode
from entrypoint.emulator import Emulator
from entrypoint.emulator.faults import Fault
from entrypoint.environment import check_aws_environment, check_header_value, check_url

from .conftest import PRODUCT
from .support import Listener, Run, base_env, run_cli

NO_KEYS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}


def start(keys_dir: Path, env: dict[str, str], tmp_path: Path) -> tuple[Run, Path]:
    report = tmp_path / "started"
    run = run_cli(["--keys-dir", str(keys_dir), "--deadline", "2", "--", "touch", str(report)], env)
    return run, report


def assert_refused(run: Run, report: Path, code: ExitCode, *fragments: str) -> None:
    assert run.returncode == code, run.stderr
    assert not report.exists(), "the workload started"
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    for fragment in fragments:
        assert fragment in run.last_line, run.last_line


@pytest.fixture
def listener() -> Iterator[Listener]:
    attacker = Listener()
    yield attacker
    attacker.close()


# -- the relative credentials URI ------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    ["@192.0.2.10/creds", "@attacker.example/creds", "@127.0.0.1:{port}/creds", "//127.0.0.1/x"],
)
def test_relative_credentials_uri_naming_another_host_is_refused(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, listener: Listener, relative: str
) -> None:
    """botocore appends the relative URI to http://169.254.170.2: ``@host/...`` makes that the
    user part and sends the request (and AWS_CONTAINER_AUTHORIZATION_TOKEN) to ``host``."""
    env = base_env(
        emulator,
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=relative.format(port=listener.port),
        AWS_CONTAINER_AUTHORIZATION_TOKEN="task-secret",
        **NO_KEYS,
    )
    run, report = start(keys_dir, env, tmp_path)
    assert_refused(
        run,
        report,
        ExitCode.CONFIGURATION,
        "configuration error: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
        "is not a path starting with a single /",
    )
    assert listener.connections == 0, "the authorization token's request left for another host"
    assert "task-secret" not in run.stderr
    assert emulator.calls() == []


# -- malformed endpoint settings: 78 at once, naming the variable ----------------------------------

MALFORMED = [
    ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://127.0.0.1:70000", "Port out of range"),
    ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://127.0.0.1:8x8", "could not be cast"),
    ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://[::1", "Invalid IPv6 URL"),
    ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://127.0.0.1:1/\u00e9", "printable ASCII"),
    ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "ftp://127.0.0.1/", "not an http:// or https://"),
    ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http:///path", "has no host"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:0/", "empty or zero port"),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://[::1", "Invalid IPv6 URL"),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254:99999/", "Port out of range"),
    ("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2:8x8/v4", "could not be cast"),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://[fd00:ec2::23", "Invalid IPv6 URL"),
]


@pytest.mark.parametrize(("variable", "value", "why"), MALFORMED)
def test_malformed_endpoint_is_a_configuration_error(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, variable: str, value: str, why: str
) -> None:
    overrides: dict[str, str | None] = {variable: value}
    if variable in ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ECS_CONTAINER_METADATA_URI_V4"):
        # The Region comes from metadata only when no variable names it.
        overrides |= {"AWS_REGION": None, "AWS_EC2_METADATA_DISABLED": None}
    if variable == "AWS_ENDPOINT_URL":
        overrides["AWS_ENDPOINT_URL_MARKETPLACE_METERING"] = None
    run, report = start(keys_dir, base_env(emulator, **overrides), tmp_path)
    assert_refused(run, report, ExitCode.CONFIGURATION, f"configuration error: {variable}=", why)
    assert f"fix {variable}" in run.last_line
    assert emulator.calls("RegisterUsage") == []


def test_authorization_token_no_header_can_carry_is_a_configuration_error(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """It was retried for the whole deadline (urllib3 cannot encode it), then exit 75."""
    env = base_env(
        emulator,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=emulator.container_credentials_uri,
        AWS_CONTAINER_AUTHORIZATION_TOKEN="to\u20acken",
        **NO_KEYS,
    )
    run, report = start(keys_dir, env, tmp_path)
    assert_refused(
        run,
        report,
        ExitCode.CONFIGURATION,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN holds characters an HTTP header cannot carry",
    )
    assert "to\u20acken" not in run.stderr  # a secret is never shown
    assert emulator.calls() == []


# -- answers: classified by status, whatever their body --------------------------------------

NESTED_ARRAY = "[" * 3000 + "]" * 3000
NESTED_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000


@pytest.mark.parametrize(
    ("status", "body", "code", "fragment"),
    [
        (400, NESTED_ARRAY, ExitCode.SERVICE_ERROR, "refused with HTTP 400 (no error code)"),
        (400, NESTED_OBJECT, ExitCode.SERVICE_ERROR, "refused with HTTP 400 (no error code)"),
        (429, NESTED_ARRAY, ExitCode.RETRIES_EXHAUSTED, "last error: HTTP 429: unparsable"),
        (500, NESTED_ARRAY, ExitCode.RETRIES_EXHAUSTED, "last error: HTTP 500: unparsable"),
    ],
    ids=["400-array", "400-object", "429-array", "500-array"],
)
def test_deeply_nested_error_answer_is_classified_by_its_status(
    emulator: Emulator,
    keys_dir: Path,
    tmp_path: Path,
    status: int,
    body: str,
    code: ExitCode,
    fragment: str,
) -> None:
    emulator.faults.inject(PRODUCT, Fault.BODY, value=f"HTTP {status} {body}")
    run, report = start(keys_dir, base_env(emulator), tmp_path)
    assert_refused(run, report, code, fragment, "RecursionError")


@pytest.mark.parametrize("status", [201, 202, 206])
def test_genuine_answer_with_another_success_status_starts_the_workload(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, status: int
) -> None:
    """botocore treats every 2xx as success; the Signature, not the status, proves the answer."""
    emulator.faults.inject(PRODUCT, Fault.STATUS, value=status)
    run, report = start(keys_dir, base_env(emulator), tmp_path)
    assert run.returncode == 0, run.stderr
    assert report.exists()
    assert [c.error for c in emulator.calls("RegisterUsage")] == ["fault:status"]


def test_forged_answer_with_another_success_status_is_still_refused(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.faults.inject(PRODUCT, Fault.OTHER_NONCE)
    run, report = start(keys_dir, base_env(emulator), tmp_path)
    assert_refused(run, report, ExitCode.BAD_SIGNATURE, "replayed or foreign answer")


# -- the checks themselves (pure) ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://metering.marketplace.us-east-1.amazonaws.com",
        "http://127.0.0.1:8787",
        "http://[fd00:ec2::254]/",
        "http://169.254.170.2/v4/abc-123",
        "HTTPS://Example.COM:443/path?x=1",
    ],
)
def test_usable_urls_pass(url: str) -> None:
    assert check_url("X", url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://user:pw@127.0.0.2:1/creds", "credentials or a backslash"),
        ("http://name:P1\\@127.0.0.2:2/creds", "credentials or a backslash"),
        ("http://127.0.0.1\\@evil/", "credentials or a backslash"),
        ("http://127.0.0.1:/", "empty or zero port"),
        ("http://127.0.0.1/ x", "printable ASCII"),
        ("http://127.0.0.1/\n", "printable ASCII"),
        ("127.0.0.1:80", "not an http:// or https://"),
        ("", "not an http:// or https://"),
    ],
)
def test_ambiguous_or_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        check_url("X", url)


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "\u20ac", "\x00", "\x7f"])
def test_header_values_must_be_printable_ascii(value: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot carry") as raised:
        check_header_value("AWS_CONTAINER_AUTHORIZATION_TOKEN", value)
    assert value not in str(raised.value)


def test_empty_variables_count_as_unset() -> None:
    check_aws_environment(
        dict.fromkeys(("AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), "")
    )
