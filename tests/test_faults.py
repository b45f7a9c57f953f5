"""The fault matrix: every way the Metering service can answer wrongly, through the real console
script, on the first attempt and after retries.

For each fault the test asserts what issue 3 asks: the workload starts only if the final answer
verified; the exit code and the diagnosis are the documented ones (README, "Exit codes"); and the
run ends within the deadline plus a small margin. Complete answers that are wrong fail closed at
once (65, or 76 for an error code nobody knows); transport faults are retried until they stop or
the deadline passes (75).

The emulator (`entrypoint.emulator.faults`) injects each fault over real HTTP; ``after retries``
means the product first answers ThrottlingException twice, so the fault meets a bootstrap that
has already been backing off. Every answer is read by botocore (with the bootstrap's bound on
size and time, `entrypoint.capped`) and classified by `entrypoint.answers`.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ExitCode
from entrypoint.answers import MAX_ANSWER_BYTES
from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, Emulator
from entrypoint.emulator.faults import Fault

from .conftest import PRODUCT
from .support import base_env, run_cli, run_cli_peak_rss

# Long enough for a few retries, short enough for CI. The margin covers the interpreter's start
# (about 0.3 s, several seconds on a loaded machine) and the last attempt's own timeout slack;
# a run that ignored the deadline takes a read timeout per byte, or forever.
DEADLINE = 2.0
MARGIN = 4.0
READ_TIMEOUT = "0.5"
BAD = "the workload was not started"


@dataclass(frozen=True)
class Case:
    fault: Fault
    code: ExitCode
    diagnosis: str
    retried: bool = False  # a transport fault: retried until the deadline
    value: float | str | None = None
    attempts: int = 2  # at least this many faulty answers before the deadline (if retried)
    label: str = ""  # the test id, when the value is too long for one


def _id(case: Case) -> str:
    if case.label:
        return f"{case.fault}:{case.label}"
    return f"{case.fault}" + (f"={case.value}" if case.value is not None else "")


def _body(label: str, body: str, code: ExitCode, diagnosis: str, **more: Any) -> Case:
    return Case(Fault.BODY, code, diagnosis, value=body, label=label, **more)


MATRIX = [
    # Signed answers that must not verify: refused at once, exit 65.
    Case(Fault.FOREIGN_KEY, ExitCode.BAD_SIGNATURE, "signature does not verify with public key v1"),
    Case(Fault.OTHER_NONCE, ExitCode.BAD_SIGNATURE, "replayed or foreign answer"),
    Case(Fault.OTHER_PRODUCT, ExitCode.BAD_SIGNATURE, "claim productCode is 'prod-other', but"),
    Case(Fault.OTHER_VERSION, ExitCode.BAD_SIGNATURE, "claim publicKeyVersion is 2, but the"),
    Case(
        Fault.FUTURE_IAT,
        ExitCode.BAD_SIGNATURE,
        "s in the future (leeway 300s); check this host's clock",
    ),
    # Complete answers that are not RegisterUsage answers: refused at once, exit 65.
    Case(
        Fault.MALFORMED_JSON,
        ExitCode.BAD_SIGNATURE,
        "the RegisterUsage answer carried no",
    ),
    Case(
        Fault.EMPTY_BODY,
        ExitCode.BAD_SIGNATURE,
        "the RegisterUsage answer carried no",
    ),
    Case(
        Fault.WRONG_CONTENT_TYPE,
        ExitCode.BAD_SIGNATURE,
        "the RegisterUsage answer carried no",
    ),
    Case(
        Fault.HUGE_BODY,
        ExitCode.BAD_SIGNATURE,
        f"by Content-Length) is over the {MAX_ANSWER_BYTES}",
    ),
    Case(
        Fault.HUGE_CHUNKED_BODY, ExitCode.BAD_SIGNATURE, f"is over the {MAX_ANSWER_BYTES}-byte cap"
    ),
    # JSON that botocore's parser chokes on (it lets AttributeError/ValueError escape): still a
    # complete answer, so 65 at once; with an error status it keeps that status's class.
    _body(
        "json-array",
        "[1, 2]",
        ExitCode.BAD_SIGNATURE,
        "could not be parsed (AttributeError",
    ),
    _body(
        "json-null",
        "null",
        ExitCode.BAD_SIGNATURE,
        "could not be parsed (AttributeError",
    ),
    _body("signature-number", '{"Signature": 5}', ExitCode.BAD_SIGNATURE, "carried no Signature"),
    _body(
        "rotation-garbage",
        '{"Signature": "a.b.c", "PublicKeyRotationTimestamp": "soon"}',
        ExitCode.BAD_SIGNATURE,
        'could not be parsed (ValueError: Invalid timestamp "soon"',
    ),
    _body(
        "rotation-infinite",
        '{"Signature": "a.b.c", "PublicKeyRotationTimestamp": 1e400}',
        ExitCode.BAD_SIGNATURE,
        "could not be parsed (RuntimeError",
    ),
    _body(
        "throttling-in-a-200",
        '{"__type": "ThrottlingException", "message": "Rate exceeded"}',
        ExitCode.BAD_SIGNATURE,
        "carried no Signature",
    ),
    _body("400-json-array", "HTTP 400 [1]", ExitCode.SERVICE_ERROR, "HTTP 400 (no error code)"),
    _body(
        "503-json-array",
        "HTTP 503 [1]",
        ExitCode.RETRIES_EXHAUSTED,
        "last error: HTTP 503: unparsable error answer",
        retried=True,
    ),
    # A proxy's or portal's HTML page with an error status: the status decides.
    Case(
        Fault.WRONG_CONTENT_TYPE,
        ExitCode.SERVICE_ERROR,
        "refused with HTTP 403 403: <!DOCTYPE html>",
        value=403,
    ),
    Case(
        Fault.WRONG_CONTENT_TYPE,
        ExitCode.RETRIES_EXHAUSTED,
        "last error: 502: <!DOCTYPE html>",
        retried=True,
        value=502,
    ),
    # An error this version does not know: stop, as AWS requires, exit 76.
    Case(Fault.UNKNOWN_4XX, ExitCode.SERVICE_ERROR, "RegisterUsage refused with HTTP 400 Unknown"),
    Case(
        Fault.UNKNOWN_4XX,
        ExitCode.SERVICE_ERROR,
        "refused with HTTP 418 UnknownFutureException",
        value=418,
    ),
    # Transport faults and server faults: retried until the deadline, exit 75.
    Case(
        Fault.UNKNOWN_5XX,
        ExitCode.RETRIES_EXHAUSTED,
        "last error: UnknownOutageException",
        retried=True,
    ),
    Case(
        Fault.CLOSE_MID_RESPONSE, ExitCode.RETRIES_EXHAUSTED, "ConnectionClosedError", retried=True
    ),
    Case(
        Fault.RESET, ExitCode.RETRIES_EXHAUSTED, "last error: ConnectionClosedError", retried=True
    ),
    Case(
        Fault.SLOW,
        ExitCode.RETRIES_EXHAUSTED,
        "last error: ReadTimeoutError",
        retried=True,
        value=5.0,
    ),
    Case(
        Fault.TRICKLE,
        ExitCode.RETRIES_EXHAUSTED,
        "last error: ReadTimeoutError",
        retried=True,
        value=0.2,
    ),
    # Headers one byte per 0.2 s: every read is within its timeout, the answer never is. The
    # first attempt takes all of the (short) deadline, so there is no second one.
    Case(
        Fault.TRICKLE_HEADERS,
        ExitCode.RETRIES_EXHAUSTED,
        "last error: ReadTimeoutError",
        retried=True,
        attempts=1,
    ),
]


def bootstrap(emulator: Emulator, keys_dir: Path, report: Path) -> tuple[int, float, str, str]:
    """Run the console script; the workload (``touch report``) records that it started."""
    env = base_env(emulator, MARKETPLACE_READ_TIMEOUT=READ_TIMEOUT)
    started = time.monotonic()
    run = run_cli(
        ["--keys-dir", str(keys_dir), "--deadline", str(DEADLINE), "--", "touch", str(report)], env
    )
    return run.returncode, time.monotonic() - started, run.last_line, run.stderr


@pytest.mark.parametrize("after_retries", [False, True], ids=["first-attempt", "after-retries"])
@pytest.mark.parametrize("case", MATRIX, ids=[_id(c) for c in MATRIX])
def test_fault_never_starts_the_workload(
    emulator: Emulator,
    keys_dir: Path,
    tmp_path: Path,
    case: Case,
    after_retries: bool,
) -> None:
    emulator.configure("prod-other")  # another product the service knows
    if after_retries:
        emulator.configure(PRODUCT, throttle=2)
    emulator.faults.inject(PRODUCT, case.fault, value=case.value)
    report = tmp_path / "started"
    code, elapsed, last_line, stderr = bootstrap(emulator, keys_dir, report)

    assert code == case.code, stderr
    assert not report.exists(), "the workload started on an answer that did not verify"
    assert "Traceback" not in stderr
    assert last_line.startswith("marketplace-entrypoint: error: "), stderr
    assert case.diagnosis in last_line, last_line
    assert elapsed < DEADLINE + MARGIN, f"ran {elapsed:.1f}s, deadline {DEADLINE}s"

    calls = emulator.calls("RegisterUsage")
    throttled = 2 if after_retries else 0
    assert [c.error for c in calls[:throttled]] == ["ThrottlingException"] * throttled
    faulty = calls[throttled:]
    assert faulty, "the fault was never served"
    assert all(c.error == f"fault:{case.fault}" for c in faulty), [c.error for c in faulty]
    if case.retried:
        assert len(faulty) >= case.attempts, "a transport fault must be retried"
        if case.attempts > 1:
            assert f"RegisterUsage attempt {throttled + 1} failed" in stderr
        assert "retries exhausted: RegisterUsage did not succeed in" in last_line
    else:
        assert len(faulty) == 1, "a complete but bad answer must not be retried"
    if code == ExitCode.BAD_SIGNATURE:
        assert last_line.endswith(BAD) or "the workload was not started" in last_line
    # One fresh nonce per attempt, whatever happened to the previous one.
    nonces = [c.nonce for c in calls]
    assert len(set(nonces)) == len(nonces)


TRANSIENT = [Fault.UNKNOWN_5XX, Fault.CLOSE_MID_RESPONSE, Fault.RESET, Fault.SLOW, Fault.TRICKLE]


@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_fault_then_recovery_starts_the_workload(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, fault: Fault
) -> None:
    """The other half of the promise: a passing fault does not turn an entitled buyer away."""
    emulator.faults.inject(PRODUCT, fault, times=1, value=5.0 if fault is Fault.SLOW else None)
    report = tmp_path / "started"
    code, elapsed, _, stderr = bootstrap(emulator, keys_dir, report)
    assert code == 0, stderr
    assert report.exists()
    assert "RegisterUsage attempt 1 failed" in stderr
    assert "after 2 attempts" in stderr
    assert elapsed < DEADLINE + MARGIN
    assert [c.error for c in emulator.calls("RegisterUsage")] == [f"fault:{fault}", None]


def test_stale_iat_verifies_because_the_nonce_proves_freshness(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """An ``iat`` ten years old, on an answer signed for this request's fresh nonce, can only
    mean the signer's clock is wrong: the nonce, not ``iat``, is what rules out a replay."""
    emulator.faults.inject(PRODUCT, Fault.STALE_IAT)
    report = tmp_path / "started"
    code, _, _, stderr = bootstrap(emulator, keys_dir, report)
    assert code == 0, stderr
    assert report.exists()
    assert "entitlement verified for product prod-test (key v1, issued 20" in stderr


def test_throttling_for_longer_than_the_deadline(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.configure(PRODUCT, throttle=10**9)
    report = tmp_path / "started"
    code, elapsed, last_line, _ = bootstrap(emulator, keys_dir, report)
    assert code == ExitCode.RETRIES_EXHAUSTED
    assert not report.exists()
    assert "last error: ThrottlingException: Rate exceeded" in last_line
    assert elapsed < DEADLINE + MARGIN
    assert len(emulator.calls()) > 2


def test_answer_just_under_the_cap_is_read_and_verified(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The cap refuses floods, not answers: a valid answer padded to just under it verifies."""
    emulator.faults.inject(PRODUCT, Fault.HUGE_BODY, value=MAX_ANSWER_BYTES - 1024)
    report = tmp_path / "started"
    code, _, _, stderr = bootstrap(emulator, keys_dir, report)
    assert code == 0, stderr
    assert report.exists()


def test_a_flood_is_not_read_into_memory(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """A 1 GiB answer (chunked, so no Content-Length warns of it) is refused after the cap: the
    bootstrap's peak RSS, as the kernel accounted it (wait4's ru_maxrss), stays that of a normal
    run (about 50 MiB), where botocore alone would have read the whole gigabyte (and, the answer
    being a valid one padded, started the workload)."""
    emulator.faults.inject(PRODUCT, Fault.HUGE_CHUNKED_BODY, value=1024**3)
    report = tmp_path / "started"
    env = base_env(emulator, MARKETPLACE_READ_TIMEOUT=READ_TIMEOUT)
    run, peak_mib = run_cli_peak_rss(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    assert run.returncode == ExitCode.BAD_SIGNATURE, run.stderr
    assert f"is over the {MAX_ANSWER_BYTES}-byte cap" in run.stderr
    assert not report.exists()
    assert 20 < peak_mib < 256, f"peak RSS {peak_mib:.0f} MiB: the flood was read into memory"


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A plain HTTP forward proxy (absolute-form request lines), recording what it relayed."""

    protocol_version = "HTTP/1.1"
    relayed: list[str]

    def do_POST(self) -> None:
        target = urllib.parse.urlsplit(self.path)
        self.relayed.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream.request("POST", target.path or "/", body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""


def test_the_capped_read_keeps_botocores_proxy_settings(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The body cap sends through botocore's own HTTP session, so HTTP_PROXY (like AWS_CA_BUNDLE
    and the timeouts botocore resolved) still applies: the request goes through the proxy,
    signed, and the answer verifies."""
    relayed: list[str] = []
    handler = type("Proxy", (_ForwardProxy,), {"relayed": relayed})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        env = base_env(emulator, HTTP_PROXY=f"http://127.0.0.1:{proxy.server_address[1]}")
        report = tmp_path / "started"
        run = run_cli(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert run.returncode == 0, run.stderr
    assert report.exists()
    assert relayed == [f"{emulator.url}/"]
    assert emulator.calls()[0].access_key_id == EMULATOR_ACCESS_KEY_ID  # SigV4 intact
