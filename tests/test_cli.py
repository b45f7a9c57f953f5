"""End to end: the installed console script, as a real process, against the emulator over HTTP.

Every outcome asserts the exit code, the one-line diagnosis, that no traceback was printed, and
whether the workload ran. Success asserts the workload ran in the bootstrap's own process with its
argv and environment intact and SIGPIPE back at its default.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator

from .conftest import PRODUCT
from .support import (
    CONSOLE_SCRIPT,
    WORKLOAD,
    Run,
    base_env,
    proc_status,
    run_cli,
    signal_bit,
)


def bootstrap(
    keys_dir: Path,
    env: dict[str, str],
    workload: list[str],
    *flags: str,
    program: list[str] | None = None,
) -> Run:
    return run_cli(["--keys-dir", str(keys_dir), *flags, "--", *workload], env, program=program)


def workload(report: Path, *args: str) -> list[str]:
    return [sys.executable, str(WORKLOAD), str(report), *args]


def assert_failed(run: Run, code: ExitCode, diagnosis: str, report: Path | None = None) -> None:
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    assert diagnosis in run.last_line, run.last_line
    if report is not None:
        assert not report.exists(), "the workload ran after a failed bootstrap"
    assert "workload ran" not in run.stdout


# -- success ------------------------------------------------------------------------------------


def test_entitled_execs_the_workload_with_same_pid_argv_and_environment(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    env = base_env(emulator, FOO="bar baz", EMPTY="", UNICODE="h\u00e9llo")
    argv = workload(report, "--port", "8080", "two words", "")
    run = bootstrap(keys_dir, env, argv)
    assert run.returncode == 0, run.stderr
    facts = json.loads(report.read_text())
    assert facts["pid"] == run.pid  # exec, not fork: the bootstrap's own process
    assert facts["argv"] == argv
    # Exactly the environment it was given: CPython's own LC_CTYPE coercion must not leak.
    assert sorted(facts["environ"]) == sorted(f"{k}={v}" for k, v in env.items())
    assert "entitlement verified for product prod-test (key v1" in run.stderr
    assert run.stdout == "workload ran\n"
    calls = emulator.calls("RegisterUsage")
    assert len(calls) == 1
    assert calls[0].status == 200
    assert calls[0].region == emulator.region


def test_workload_starts_with_default_signal_dispositions_and_empty_mask(
    emulator: Emulator, keys_dir: Path
) -> None:
    """CPython ignores SIGPIPE and SIGXFSZ; the exec'd workload must not inherit that."""
    run = bootstrap(keys_dir, base_env(emulator), ["cat", "/proc/self/status"])
    assert run.returncode == 0, run.stderr
    status = proc_status(run.stdout)
    assert int(status["Pid"]) == run.pid
    ignored = int(status["SigIgn"], 16)
    assert not ignored & signal_bit(signal.SIGPIPE), status["SigIgn"]
    assert not ignored & signal_bit(signal.SIGXFSZ), status["SigIgn"]
    assert int(status["SigBlk"], 16) == 0


def test_control_a_python_exec_without_the_reset_leaks_ignored_sigpipe() -> None:
    """Shows the test above can fail: exec from plain CPython keeps SIGPIPE ignored."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; os.execvp('cat', ['cat', '/proc/self/status'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(proc_status(out)["SigIgn"], 16) & signal_bit(signal.SIGPIPE)


def test_workload_exit_status_passes_through(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    env = base_env(emulator, WORKLOAD_EXIT="42")
    assert bootstrap(keys_dir, env, workload(tmp_path / "r.json")).returncode == 42


def test_python_dash_m_entrypoint_works_too(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    program = [sys.executable, "-m", "entrypoint"]
    run = bootstrap(keys_dir, base_env(emulator), workload(report), program=program)
    assert run.returncode == 0, run.stderr
    assert json.loads(report.read_text())["pid"] == run.pid


def test_workload_without_double_dash(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    argv = workload(report, "--port", "8080")
    run = run_cli(["--keys-dir", str(keys_dir), *argv], base_env(emulator))
    assert run.returncode == 0, run.stderr
    assert json.loads(report.read_text())["argv"] == argv


def test_throttled_then_entitled(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    emulator.configure(PRODUCT, throttle=3)
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, base_env(emulator), workload(report))
    assert run.returncode == 0, run.stderr
    assert report.exists()
    retries = [line for line in run.stderr_lines if "RegisterUsage attempt" in line]
    assert len(retries) == 3
    assert "attempt 1 failed: ThrottlingException: Rate exceeded; retrying in" in retries[0]
    assert "s left of the 1800s deadline" in retries[0]
    assert "after 4 attempts" in run.stderr
    nonces = [c.nonce for c in emulator.calls("RegisterUsage")]
    assert len(nonces) == 4
    assert len(set(nonces)) == 4


def test_server_errors_then_entitled(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    emulator.configure(PRODUCT, server_errors=2)
    run = bootstrap(keys_dir, base_env(emulator), workload(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    assert "InternalServiceErrorException" in run.stderr
    assert [c.status for c in emulator.calls()] == [500, 500, 200]


def test_rotation_timestamp_warns_and_still_verifies(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.configure(PRODUCT, rotation=datetime(2027, 3, 1, 12, 0, tzinfo=UTC))
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, base_env(emulator), workload(report))
    assert run.returncode == 0, run.stderr
    assert report.exists()
    warning = next(line for line in run.stderr_lines if "being rotated" in line)
    assert warning.startswith("marketplace-entrypoint: warning: public key v1 of product prod-test")
    assert "2027-03-01T12:00:00+00:00" in warning
    assert "ship an image with key v2" in warning


def test_json_log_format(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    emulator.configure(PRODUCT, throttle=1)
    env = base_env(emulator, MARKETPLACE_LOG_FORMAT="json")
    run = bootstrap(keys_dir, env, workload(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    entries = [json.loads(line) for line in run.stderr_lines]
    events = [e["event"] for e in entries]
    assert events == [
        "register_usage_start",
        "credentials",
        "register_usage_retry",
        "entitlement_verified",
    ]
    assert entries[1]["method"] == "env"
    assert entries[1]["supported"] is False
    assert entries[2]["error"] == "ThrottlingException"
    assert entries[3]["product_code"] == PRODUCT


def test_selected_product_and_version(emulator: Emulator, tmp_path: Path) -> None:
    emulator.configure("prod-other", key_versions=(1, 2))
    keys = emulator.write_keys(tmp_path / "keys")
    env = base_env(emulator, MARKETPLACE_PRODUCT_CODE="prod-other")
    run = bootstrap(keys, env, workload(tmp_path / "r.json"), "--public-key-version", "1")
    assert run.returncode == 0, run.stderr
    call = emulator.calls("RegisterUsage")[0]
    assert call.request["ProductCode"] == "prod-other"
    assert call.request["PublicKeyVersion"] == 1


def test_highest_key_version_is_the_default(emulator: Emulator, tmp_path: Path) -> None:
    emulator.configure(PRODUCT, key_versions=(1, 2))
    keys = emulator.write_keys(tmp_path / "keys")
    run = bootstrap(keys, base_env(emulator), workload(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    assert emulator.calls("RegisterUsage")[0].request["PublicKeyVersion"] == 2


# -- what the service answers --------------------------------------------------------------------

SERVICE_OUTCOMES = [
    ("not-entitled", ExitCode.NOT_ENTITLED, "not entitled: the buyer has no active subscription"),
    (
        "platform-not-supported",
        ExitCode.PLATFORM_NOT_SUPPORTED,
        "platform not supported: RegisterUsage is only answered on Amazon ECS",
    ),
    ("invalid-region", ExitCode.CONFIGURATION, "InvalidRegionException"),
    ("disabled-api", ExitCode.CONFIGURATION, "DisabledApiException"),
]


@pytest.mark.parametrize(("outcome", "code", "diagnosis"), SERVICE_OUTCOMES)
def test_service_refusal(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, outcome: str, code: ExitCode, diagnosis: str
) -> None:
    emulator.configure(PRODUCT, outcome=outcome)
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, base_env(emulator), workload(report))
    assert_failed(run, code, diagnosis, report)
    assert len(emulator.calls()) == 1  # final errors are not retried


def test_not_entitled_after_throttling(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    emulator.configure(PRODUCT, outcome="not-entitled", throttle=2)
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, base_env(emulator), workload(report))
    assert_failed(run, ExitCode.NOT_ENTITLED, "not entitled", report)
    assert len(emulator.calls()) == 3


def test_wrong_region_is_invalid_region(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    env = base_env(emulator, AWS_REGION="eu-west-1")
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, env, workload(report))
    assert_failed(run, ExitCode.CONFIGURATION, "InvalidRegionException", report)
    assert "check AWS_REGION / AWS_DEFAULT_REGION" in run.last_line


def test_product_unknown_to_the_service(emulator: Emulator, tmp_path: Path) -> None:
    emulator.configure("prod-unlisted")
    keys = emulator.write_keys(tmp_path / "keys", ["prod-unlisted"])
    del emulator.state.products["prod-unlisted"]
    report = tmp_path / "report.json"
    run = bootstrap(keys, base_env(emulator), workload(report))
    assert_failed(run, ExitCode.CONFIGURATION, "InvalidProductCodeException", report)


def test_key_version_unknown_to_the_service(emulator: Emulator, tmp_path: Path) -> None:
    emulator.configure(PRODUCT, key_versions=(1, 2))
    keys = emulator.write_keys(tmp_path / "keys")
    emulator.configure(PRODUCT, key_versions=(1,))
    report = tmp_path / "report.json"
    run = bootstrap(keys, base_env(emulator), workload(report))
    assert_failed(run, ExitCode.CONFIGURATION, "InvalidPublicKeyVersionException", report)


def test_retries_exhausted_within_the_deadline(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.configure(PRODUCT, throttle=10**9)
    report = tmp_path / "report.json"
    started = time.monotonic()
    run = bootstrap(keys_dir, base_env(emulator), workload(report), "--deadline", "2")
    elapsed = time.monotonic() - started
    assert_failed(
        run, ExitCode.RETRIES_EXHAUSTED, "retries exhausted: RegisterUsage did not", report
    )
    assert "last error: ThrottlingException: Rate exceeded" in run.last_line
    assert len(emulator.calls()) > 3
    assert elapsed < 2 + 10  # deadline plus process start; the loop itself never overruns


def test_unreachable_endpoint_is_retried_then_exhausted(keys_dir: Path, tmp_path: Path) -> None:
    with Emulator() as closed:
        url = closed.url  # nothing listens here once the block ends
    env = base_env(url)
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, env, workload(report), "--deadline", "1")
    assert_failed(run, ExitCode.RETRIES_EXHAUSTED, "last error: EndpointConnectionError", report)


# -- what the bootstrap refuses ------------------------------------------------------------------


def test_signature_from_another_key_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    with Emulator(products={PRODUCT: emulator.state.products[PRODUCT]}) as impostor:
        keys = impostor.write_keys(tmp_path / "keys")  # a different, freshly made key
    report = tmp_path / "report.json"
    run = bootstrap(keys, base_env(emulator), workload(report))
    assert_failed(
        run, ExitCode.BAD_SIGNATURE, "signature does not verify with public key v1", report
    )


def test_jwt_io_demo_key_in_the_image_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    from .support import JWT_IO_DEMO_PUBLIC_PEM

    path = tmp_path / "keys" / PRODUCT / "v1.pem"
    path.parent.mkdir(parents=True)
    path.write_bytes(JWT_IO_DEMO_PUBLIC_PEM)
    report = tmp_path / "report.json"
    run = bootstrap(tmp_path / "keys", base_env(emulator), workload(report))
    assert_failed(run, ExitCode.CONFIGURATION, "jwt.io RS256 demo key", report)
    assert emulator.calls() == []  # refused before any network call


def test_product_not_trusted_by_the_image(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    env = base_env(emulator, MARKETPLACE_PRODUCT_CODE="prod-free")
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, env, workload(report))
    assert_failed(run, ExitCode.CONFIGURATION, "'prod-free' is not trusted by this image", report)
    assert emulator.calls() == []


def test_several_products_and_none_chosen(emulator: Emulator, tmp_path: Path) -> None:
    emulator.configure("prod-second")
    keys = emulator.write_keys(tmp_path / "keys")
    run = bootstrap(keys, base_env(emulator), workload(tmp_path / "r.json"))
    assert_failed(run, ExitCode.CONFIGURATION, "trusts several products")
    assert "MARKETPLACE_PRODUCT_CODE" in run.last_line


def test_missing_keys_directory(emulator: Emulator, tmp_path: Path) -> None:
    run = bootstrap(tmp_path / "nope", base_env(emulator), workload(tmp_path / "r.json"))
    assert_failed(run, ExitCode.CONFIGURATION, "keys directory")
    assert "does not exist" in run.last_line


def test_no_region_names_both_variables(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    env = base_env(emulator, AWS_REGION=None, AWS_DEFAULT_REGION=None)
    run = bootstrap(keys_dir, env, workload(tmp_path / "r.json"))
    assert_failed(run, ExitCode.CONFIGURATION, "no AWS Region found")
    assert "AWS_REGION" in run.last_line
    assert "AWS_DEFAULT_REGION" in run.last_line
    assert emulator.calls() == []


def test_aws_default_region_alone_is_used(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    env = base_env(emulator, AWS_REGION=None, AWS_DEFAULT_REGION=emulator.region)
    run = bootstrap(keys_dir, env, workload(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    assert "(from AWS_DEFAULT_REGION)" in run.stderr


def test_no_credentials(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    env = base_env(emulator, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, env, workload(report))
    assert_failed(run, ExitCode.CONFIGURATION, "no AWS credentials found", report)
    assert "aws-marketplace:RegisterUsage" in run.last_line


def test_credentials_never_appear_in_the_output(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.configure(PRODUCT, throttle=2)
    env = base_env(emulator, MARKETPLACE_LOG_FORMAT="json")
    run = bootstrap(keys_dir, env, workload(tmp_path / "r.json"))
    assert run.returncode == 0
    assert env["AWS_SECRET_ACCESS_KEY"] not in run.stderr + run.stdout
    assert env["AWS_ACCESS_KEY_ID"] not in run.stderr + run.stdout


def test_access_key_id_reaches_the_service(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    run = bootstrap(keys_dir, base_env(emulator), workload(tmp_path / "r.json"))
    assert run.returncode == 0
    assert emulator.calls()[0].access_key_id == "AKIAEMULATOREXAMPLE1"


@pytest.mark.parametrize(
    ("flags", "env", "code", "diagnosis"),
    [
        (["--deadline", "soon"], {}, ExitCode.USAGE, "--deadline='soon' is invalid"),
        (["--log-format", "xml"], {}, ExitCode.USAGE, "--log-format='xml' is invalid"),
        (["--bogus"], {}, ExitCode.USAGE, "unrecognized arguments: --bogus"),
        (["--dead", "5"], {}, ExitCode.USAGE, "unrecognized arguments"),  # no abbreviations
        ([], {"MARKETPLACE_RETRY_DEADLINE": "0"}, ExitCode.CONFIGURATION, "MARKETPLACE_RETRY"),
        ([], {"MARKETPLACE_PUBLIC_KEY_VERSION": "one"}, ExitCode.CONFIGURATION, "not a whole"),
        ([], {"AWS_REGION": "Mars"}, ExitCode.CONFIGURATION, "is not an AWS Region name"),
    ],
)
def test_invalid_settings_are_refused_before_any_call(
    emulator: Emulator,
    keys_dir: Path,
    tmp_path: Path,
    flags: list[str],
    env: dict[str, str],
    code: ExitCode,
    diagnosis: str,
) -> None:
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, base_env(emulator, **env), workload(report), *flags)
    assert_failed(run, code, diagnosis, report)
    assert emulator.calls() == []


def test_no_workload_is_a_usage_error(emulator: Emulator, keys_dir: Path) -> None:
    run = run_cli(["--keys-dir", str(keys_dir)], base_env(emulator))
    assert_failed(run, ExitCode.USAGE, "usage error: no workload to start")
    run = run_cli(["--keys-dir", str(keys_dir), "--"], base_env(emulator))
    assert_failed(run, ExitCode.USAGE, "usage error: no workload to start")
    assert emulator.calls() == []


def test_workload_not_found_is_127(emulator: Emulator, keys_dir: Path) -> None:
    run = bootstrap(keys_dir, base_env(emulator), ["no-such-program-xyz", "--flag"])
    assert_failed(
        run, ExitCode.WORKLOAD_NOT_FOUND, "workload 'no-such-program-xyz' not found on PATH="
    )


def test_workload_not_executable_is_126(emulator: Emulator, keys_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "server.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    run = bootstrap(keys_dir, base_env(emulator), [str(script)])
    assert_failed(run, ExitCode.WORKLOAD_NOT_EXECUTABLE, "is not executable")


def test_workload_without_shebang_is_126(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "server"
    script.write_bytes(b"\x00\x01binary garbage")
    script.chmod(0o755)
    run = bootstrap(keys_dir, base_env(emulator), [str(script)])
    assert_failed(run, ExitCode.WORKLOAD_NOT_EXECUTABLE, "not in an executable format")


def test_workload_that_is_a_directory_is_126(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    run = bootstrap(keys_dir, base_env(emulator), [str(tmp_path)])
    assert_failed(run, ExitCode.WORKLOAD_NOT_EXECUTABLE, "cannot start workload")


# -- signals during the bootstrap ------------------------------------------------------------------


def _start(keys_dir: Path, env: dict[str, str], report: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--keys-dir", str(keys_dir), "--", *workload(report)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt(process: subprocess.Popen[str], signum: int) -> tuple[int, float, str]:
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, time.monotonic() - sent, stderr


def _wait_for(emulator: Emulator, count: int) -> None:
    limit = time.monotonic() + 30
    while len(emulator.calls()) < count:
        assert time.monotonic() < limit, "the bootstrap never called the emulator"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitCode.INTERRUPTED_SIGTERM), (signal.SIGINT, ExitCode.INTERRUPTED_SIGINT)],
)
def test_signal_during_backoff_ends_within_a_second(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, signum: int, code: ExitCode
) -> None:
    emulator.configure(PRODUCT, throttle=10**9)
    # A backoff of 60-120 s: after the first throttled answer the process is asleep.
    env = base_env(emulator, MARKETPLACE_RETRY_BASE_DELAY="120", MARKETPLACE_RETRY_MAX_DELAY="120")
    report = tmp_path / "report.json"
    process = _start(keys_dir, env, report)
    _wait_for(emulator, 1)
    time.sleep(0.3)  # past the answer, into the wait
    returncode, took, stderr = _interrupt(process, signum)
    assert returncode == code, stderr
    assert took < 1.0, f"took {took:.2f}s to stop"
    assert f"interrupted: received {signal.Signals(signum).name} before the workload" in stderr
    assert "Traceback" not in stderr
    assert not report.exists()
    assert len(emulator.calls()) == 1


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitCode.INTERRUPTED_SIGTERM), (signal.SIGINT, ExitCode.INTERRUPTED_SIGINT)],
)
def test_signal_during_the_call_ends_within_a_second(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, signum: int, code: ExitCode
) -> None:
    emulator.configure(PRODUCT, latency=30)
    env = base_env(emulator, MARKETPLACE_READ_TIMEOUT="60")
    report = tmp_path / "report.json"
    process = _start(keys_dir, env, report)
    _wait_for(emulator, 0)
    limit = time.monotonic() + 30
    # The emulator records a call when it answers; wait until the request is in flight instead.
    while not _connected(process.pid):
        assert time.monotonic() < limit, "the bootstrap never connected"
        time.sleep(0.02)
    returncode, took, stderr = _interrupt(process, signum)
    assert returncode == code, stderr
    assert took < 1.0, f"took {took:.2f}s to stop"
    assert "Traceback" not in stderr
    assert not report.exists()


def _connected(pid: int) -> bool:
    """True once ``pid`` holds an established TCP connection (the request in flight)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01 = ESTABLISHED
                return True
    return False


# -- the other commands --------------------------------------------------------------------------


def test_help_and_version() -> None:
    env = {"PATH": os.environ["PATH"]}
    run = run_cli(["--help"], env)
    assert run.returncode == 0
    assert "Exit codes: 64 usage, 65 bad signature" in run.stdout
    assert "[MARKETPLACE_PRODUCT_CODE]" in run.stdout
    run = run_cli(["--version"], env)
    assert run.returncode == 0
    assert run.stdout.startswith("marketplace-entrypoint 0.")


def test_demo_runs_the_whole_flow() -> None:
    run = run_cli(["demo"], {"PATH": os.environ["PATH"]})
    assert run.returncode == 0, run.stderr
    assert "workload: running as PID" in run.stdout
    assert f"PID {run.pid}," in run.stdout
    assert "RegisterUsage attempt 1 failed: ThrottlingException" in run.stderr
    assert "entitlement verified for product demo-product-0123456789" in run.stderr


def test_demo_execs_a_given_command(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = run_cli(
        ["demo", "--throttle", "0", "--", *workload(report)], {"PATH": os.environ["PATH"]}
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(report.read_text())["pid"] == run.pid


def test_demo_leaves_no_temporary_keys(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path)}
    run = run_cli(["demo", "--throttle", "0", "--", "true"], env)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_not_entitled() -> None:
    run = run_cli(["demo", "--outcome", "not-entitled"], {"PATH": os.environ["PATH"]})
    assert_failed(run, ExitCode.NOT_ENTITLED, "not entitled")
    assert "workload: running" not in run.stdout


def test_emulator_command_serves_a_real_bootstrap(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    server = subprocess.Popen(
        [
            str(CONSOLE_SCRIPT),
            "emulator",
            "--port",
            "0",
            "--keys-out",
            str(keys),
            "--product",
            "prod-cli:throttle=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("Metering emulator listening on http://127.0.0.1:"), first
        url = first.split()[4]
        while "point a bootstrap" not in server.stdout.readline():
            pass
        env = base_env(url)
        report = tmp_path / "report.json"
        run = bootstrap(keys, env, workload(report))
        assert run.returncode == 0, run.stderr
        assert report.exists()
        assert "after 2 attempts" in run.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=10)
    assert server.returncode == 0


def test_emulator_command_refuses_a_bad_product_spec() -> None:
    run = run_cli(["emulator", "--product", "p:teleport"], {"PATH": os.environ["PATH"]})
    assert_failed(run, ExitCode.USAGE, "--product 'p:teleport'")


def test_key_readable_only_by_root_is_refused_for_a_non_root_user(emulator: Emulator) -> None:
    """An arbitrary non-root UID (OpenShift, runAsUser) must get a diagnosis, not a crash."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user")
    try:
        subprocess.run(
            [str(CONSOLE_SCRIPT), "--version"], user=65534, capture_output=True, check=True
        )
    except (PermissionError, subprocess.CalledProcessError):
        pytest.skip(
            "this Python installation is not readable by other users (the image tests cover it)"
        )
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="mpe-uid-"))
    try:
        shared.chmod(0o755)
        keys = emulator.write_keys(shared / "keys")
        (keys / PRODUCT / "v1.pem").chmod(0o600)
        process = subprocess.run(
            [str(CONSOLE_SCRIPT), "--keys-dir", str(keys), "--", "true"],
            env=base_env(emulator),
            capture_output=True,
            text=True,
            user=65534,
            group=65534,
            timeout=60,
            check=False,
        )
        run = Run(0, process.returncode, process.stdout, process.stderr)
        assert_failed(run, ExitCode.CONFIGURATION, "is not readable by this user")
    finally:
        import shutil

        shutil.rmtree(shared)


def test_answer_slower_than_the_read_timeout_is_retried(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.configure(PRODUCT, latency=1.0)
    env = base_env(emulator, MARKETPLACE_READ_TIMEOUT="0.2")
    report = tmp_path / "report.json"
    run = bootstrap(keys_dir, env, workload(report), "--deadline", "1.5")
    assert_failed(run, ExitCode.RETRIES_EXHAUSTED, "last error: ReadTimeoutError", report)
    assert "RegisterUsage attempt 1 failed: ReadTimeoutError" in run.stderr
