"""Files the environment names, through the real console script: only regular files, never blocking.

botocore opens what ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``, ``AWS_WEB_IDENTITY_TOKEN_FILE``,
``AWS_CA_BUNDLE`` and ``AWS_CREDENTIAL_FILE`` name, and reads each whole. Before
`entrypoint.envfiles`, ``/dev/stdin`` as the authorization token file or the CA bundle (an open
pipe) held the start past its deadline, and a 64 MiB web identity token was posted to STS whole.
Now each is a configuration error at once (78), naming the variable, before any request.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from entrypoint import ConfigurationError, ExitCode
from entrypoint.emulator import Emulator
from entrypoint.envfiles import NAMED_FILES, check_named_files, read_named_file

from .support import CONSOLE_SCRIPT, Run, base_env, run_cli

NO_KEYS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
IRSA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cHJvZCJ9.c2ln"
SPEC = {spec.variable: spec for spec in NAMED_FILES}


def environment(emulator: Emulator, variable: str, value: str) -> dict[str, str]:
    """A start that reads ``variable``'s file: the credential source that uses it, if any."""
    if variable == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE":
        extra = {
            **NO_KEYS,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": emulator.container_credentials_uri,
        }
    elif variable == "AWS_WEB_IDENTITY_TOKEN_FILE":
        extra = {
            **NO_KEYS,
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/marketplace-product",
            "AWS_ENDPOINT_URL_STS": emulator.sts_endpoint,
        }
    elif variable == "AWS_CREDENTIAL_FILE":
        extra = dict(NO_KEYS)
    else:
        extra = {}
    return base_env(emulator, **extra, **{variable: value})


def start_with_open_stdin(keys_dir: Path, env: dict[str, str], tmp_path: Path) -> tuple[Run, Path]:
    """The console script with its stdin an open pipe nobody writes to (``docker run -i``)."""
    report = tmp_path / "started"
    command = [str(CONSOLE_SCRIPT), "--keys-dir", str(keys_dir), "--deadline", "3"]
    process = subprocess.Popen(
        [*command, "--", "touch", str(report)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"the start blocked on its stdin; stderr:\n{stderr}") from None
    return Run(process.pid, process.returncode, stdout, stderr), report


def assert_refused(run: Run, report: Path, *fragments: str) -> None:
    assert run.returncode == ExitCode.CONFIGURATION, run.stderr
    assert not report.exists(), "the workload started"
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: configuration error: ")
    for fragment in fragments:
        assert fragment in run.last_line, run.last_line


@pytest.mark.parametrize("variable", ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CA_BUNDLE"])
def test_stdin_as_a_named_file_is_refused_at_once(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, variable: str
) -> None:
    """It blocked reading the pipe past the deadline (3 s here, 30 minutes by default)."""
    started = time.monotonic()
    run, report = start_with_open_stdin(
        keys_dir, environment(emulator, variable, "/dev/stdin"), tmp_path
    )
    assert_refused(run, report, f"{variable} names /dev/stdin, which is a pipe or FIFO")
    assert time.monotonic() - started < 3, "refused only when the deadline ran out"
    assert emulator.calls() == []


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A FIFO with no writer: opening it for reading without O_NONBLOCK waits forever."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _special(kind: str, tmp_path: Path, fifo: Path) -> tuple[str, str]:
    """A path of ``kind`` and what the diagnosis calls it."""
    link = tmp_path / f"link-to-{kind}"
    if kind == "fifo":
        return str(fifo), "is a pipe or FIFO"
    if kind == "directory":
        return str(tmp_path), "is a directory"
    if kind == "dev-zero":
        return "/dev/zero", "is a character device"
    if kind == "symlink-to-dev-zero":
        link.symlink_to("/dev/zero")
        return str(link), "is a character device"
    if kind == "symlink-to-fifo":
        link.symlink_to(fifo)
        return str(link), "is a pipe or FIFO"
    raise AssertionError(kind)


KINDS = ["fifo", "directory", "dev-zero", "symlink-to-dev-zero", "symlink-to-fifo"]
# The directory case is left out for AWS_CA_BUNDLE: botocore takes a directory there as a CA
# directory (OpenSSL's -CApath), which is legitimate.
CASES = [
    (variable, kind)
    for variable in SPEC
    for kind in KINDS
    if not (kind == "directory" and SPEC[variable].directory)
]


@pytest.mark.parametrize(("variable", "kind"), CASES)
def test_a_named_file_that_is_not_a_regular_file_is_refused(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, fifo: Path, variable: str, kind: str
) -> None:
    path, what = _special(kind, tmp_path, fifo)
    env = environment(emulator, variable, path)
    report = tmp_path / "started"
    run = run_cli(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env, timeout=30)
    assert_refused(run, report, f"configuration error: {variable} names {path}, which {what}")
    assert emulator.calls() == []


def test_a_64_mib_web_identity_token_is_never_posted(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """STS takes at most 20,000 characters (the API model's clientTokenType); botocore posted
    the whole file (14.6 s for 64 MiB)."""
    token = tmp_path / "token"
    with token.open("wb") as out:
        out.truncate(64 * 1024 * 1024)
    env = environment(emulator, "AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    report = tmp_path / "started"
    started = time.monotonic()
    run = run_cli(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    assert_refused(
        run, report, f"AWS_WEB_IDENTITY_TOKEN_FILE names {token}, which holds more than 20000 bytes"
    )
    assert time.monotonic() - started < 10
    assert emulator.calls() == []  # nothing was posted


def test_an_authorization_token_file_no_header_can_carry_is_refused(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_bytes("to\u20acken".encode())
    env = environment(emulator, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    report = tmp_path / "started"
    run = run_cli(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    assert_refused(run, report, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE holds characters an HTTP")
    assert "to\u20acken" not in run.stderr  # a secret is never shown


@pytest.mark.parametrize("variable", list(SPEC))
def test_a_missing_named_file_names_the_variable(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, variable: str
) -> None:
    missing = tmp_path / "missing"
    env = environment(emulator, variable, str(missing))
    report = tmp_path / "started"
    run = run_cli(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    assert_refused(run, report, f"cannot read {missing} (named by {variable})")


def test_regular_files_and_a_ca_directory_are_read_as_usual(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The control: an authorization token file, a CA directory and an EC2 credential file with
    nothing botocore uses all pass, and the start verifies."""
    emulator.platform.configure(credentials_token="ecs-agent-token-123")
    token = tmp_path / "token"
    token.write_text("ecs-agent-token-123")
    ec2 = tmp_path / "ec2-credentials"
    ec2.write_text("# no keys\n")
    env = environment(emulator, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    env |= {"AWS_CA_BUNDLE": str(tmp_path), "AWS_CREDENTIAL_FILE": str(ec2)}
    report = tmp_path / "started"
    run = run_cli(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    assert run.returncode == 0, run.stderr
    assert report.exists()


# -- the checks themselves ------------------------------------------------------------------------


def test_a_proc_file_is_measured_by_what_it_holds() -> None:
    """/proc files say st_size 0; the cap counts the bytes actually read."""
    spec = SPEC["AWS_WEB_IDENTITY_TOKEN_FILE"]
    data = read_named_file(spec, "/proc/self/status")
    assert data is not None
    assert data.startswith(b"Name:")


def test_tilde_is_expanded_where_botocore_expands_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "creds").write_text("AWSAccessKeyId=x\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_named_file(SPEC["AWS_CREDENTIAL_FILE"], "~/creds") == b"AWSAccessKeyId=x\n"
    with pytest.raises(ConfigurationError, match="cannot read ~/creds"):
        read_named_file(SPEC["AWS_WEB_IDENTITY_TOKEN_FILE"], "~/creds")


def test_empty_variables_count_as_unset() -> None:
    check_named_files(dict.fromkeys(SPEC, ""))
