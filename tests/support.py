"""Shared test machinery: cached keys, a token minter, and a runner for the real console script."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator

# 2026-11-21T10:30:00Z: the instant time-injected tests start from (a Saturday, mid-month).
T0 = 1_795_257_000.0
HOUR = 3600.0

REPO = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = Path(sys.executable).with_name("marketplace-entrypoint")
WORKLOAD = Path(__file__).with_name("workload.py")

# The jwt.io RS256 demo key, as printed in AWS's RegisterUsage documentation (public data: the
# key is compromised, its private half is published). See ../shared/marketplace-facts.md.
JWT_IO_DEMO_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDdlatRjRjogo3WojgGHFHYLugd
UWAY9iR3fy4arWNA1KoS8kVw33cJibXr8bvwUAUparCwlvdbH6dvEOfou0/gCFQs
HUfQrSDv+MuSUMAe8jzKE4qW+jK+xQU9a03GUnKHkkle+Q0pX/g6jXZ7r1/xAK5D
o2kQ+X5xK9cipRgEKwIDAQAB
-----END PUBLIC KEY-----
"""
JWT_IO_DEMO_FINGERPRINT = "d2f8d7917928bbe7a457bdbaa0f69221a49b0fbc867ea34b700e9e78364d57e8"


class KeyPool:
    """RSA keys made once per test session and handed out by name (2048-bit: ~50 ms each)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int, int], rsa.RSAPrivateKey] = {}
        self._lock = threading.Lock()

    def get(self, name: str, version: int = 1, bits: int = 2048) -> rsa.RSAPrivateKey:
        with self._lock:
            key = self._keys.get((name, version, bits))
            if key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
                self._keys[(name, version, bits)] = key
            return key

    def factory(self, product_code: str, version: int) -> rsa.RSAPrivateKey:
        """An emulator key factory: the same product and version always get the same key."""
        return self.get(product_code, version)


KEYS = KeyPool()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def encode_part(part: Mapping[str, Any] | bytes | str) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode("utf-8")
    return json.dumps(part, separators=(",", ":")).encode("utf-8")


def pss_sign(key: rsa.RSAPrivateKey, data: bytes, salt_length: int = 32) -> bytes:
    return key.sign(
        data,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length),
        hashes.SHA256(),
    )


def mint(
    key: rsa.RSAPrivateKey,
    payload: Mapping[str, Any] | bytes | str,
    header: Mapping[str, Any] | bytes | str | None = None,
    *,
    salt_length: int = 32,
) -> str:
    """A compact JWS over exactly these header and payload bytes, signed PS256 with ``key``."""
    head = encode_part({"alg": "PS256", "typ": "JWT"} if header is None else header)
    signing_input = f"{b64url(head)}.{b64url(encode_part(payload))}"
    signature = pss_sign(key, signing_input.encode("ascii"), salt_length)
    return f"{signing_input}.{b64url(signature)}"


def claims(
    product_code: str = "prod-test",
    version: int = 1,
    nonce: str = "n" * 43,
    iat: int = 1_790_000_000,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "productCode": product_code,
        "publicKeyVersion": version,
        "nonce": nonce,
        "iat": iat,
    }
    body.update(extra)
    return body


def base_env(emulator: Emulator | str, **overrides: str | None) -> dict[str, str]:
    """The environment of a bootstrap pointed at ``emulator`` (or an endpoint URL), isolated from
    this machine's AWS configuration. ``None`` removes a variable. No LANG, like most images."""
    url = emulator if isinstance(emulator, str) else emulator.url
    region = "us-east-1" if isinstance(emulator, str) else emulator.region
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": url,
        "AWS_ACCESS_KEY_ID": EMULATOR_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": EMULATOR_SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MARKETPLACE_RETRY_BASE_DELAY": "0.01",
        "MARKETPLACE_RETRY_MAX_DELAY": "0.05",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class Listener:
    """A TCP port on loopback that counts the connections made to it: the host a hostile
    setting names, which must never be contacted. Close it with `close`."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Run:
    """A finished console-script run."""

    pid: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def last_line(self) -> str:
        lines = self.stderr_lines
        return lines[-1] if lines else ""


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 60,
    program: Sequence[str] | None = None,
) -> Run:
    """Run the installed ``marketplace-entrypoint`` console script (or ``program``) to the end."""
    command = [*(program or [str(CONSOLE_SCRIPT)]), *args]
    process = subprocess.Popen(
        command,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"{command} did not finish in {timeout}s; stderr:\n{stderr}") from None
    return Run(pid=process.pid, returncode=process.returncode, stdout=stdout, stderr=stderr)


# Forks the command from a small interpreter, so that the child's peak RSS (wait4's ru_maxrss,
# which also counts the parent's pages shared before exec) is not pytest's own size.
_PEAK_RSS = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_cli_peak_rss(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60
) -> tuple[Run, float]:
    """Run the console script as `run_cli` does, from a small parent that measures it: the run
    (its ``returncode`` is the script's own exit status) and its peak RSS in MiB, as the kernel
    accounted it (``ru_maxrss`` is in kilobytes on Linux)."""
    program = [sys.executable, "-c", _PEAK_RSS, str(CONSOLE_SCRIPT)]
    run = run_cli(args, env, timeout=timeout, program=program)
    peak_kib, code = (int(field) for field in run.stdout.split())
    run.returncode = code
    return run, peak_kib / 1024


LEAVE_THE_PROMPT = b"import os; os._exit(99)\n"


def run_on_terminal(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 60
) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdin, stdout and stderr, in a session of its
    own (what a container runtime's ``-t`` gives); return its exit status and all it wrote."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        list(argv), env=dict(env), stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    return read_terminal(master, process, timeout)


def read_terminal(
    master: int, process: subprocess.Popen[bytes], timeout: float = 60
) -> tuple[int, str]:
    """Read a pseudo-terminal's ``master`` side until every process holding it has gone, then
    close it; return ``process``'s exit status and the output. A Python prompt that appears is
    answered with ``os._exit(99)``, so the run always ends."""
    import select
    import time

    output = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has gone
                break
            if not data:
                break
            output += data
            if b">>> " in output and not answered:
                answered = True
                os.write(master, LEAVE_THE_PROMPT)
        else:
            process.kill()
            raise AssertionError(f"{process.args!r} did not end in {timeout}s:\n{output.decode()}")
        return process.wait(timeout=30), output.decode("utf-8", "replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def signed_post(
    url: str,
    body: bytes,
    target: str,
    *,
    region: str = "us-east-1",
    access_key_id: str = EMULATOR_ACCESS_KEY_ID,
    secret_access_key: str = EMULATOR_SECRET_ACCESS_KEY,
    session_token: str | None = None,
    service: str = "aws-marketplace",
    sign: bool = True,
    tamper: Callable[[dict[str, str]], None] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the emulator as a JSON 1.1 request, SigV4-signed with botocore's signer
    (or not at all); ``tamper`` may change the headers after signing. Returns (status, JSON)."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    if sign:
        credentials = Credentials(access_key_id, secret_access_key, session_token)
        SigV4Auth(credentials, service, region).add_auth(request)
    headers = dict(request.headers.items())
    if tamper is not None:
        tamper(headers)
    raw = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def proc_status(text: str) -> dict[str, str]:
    """Parse /proc/<pid>/status text into a dict."""
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def signal_bit(signum: int) -> int:
    """The bit of ``signum`` in /proc/<pid>/status masks (SigIgn, SigBlk, SigCgt)."""
    return 1 << (signum - 1)


class FakeClock:
    """Epoch seconds that move only when told: ``advance``, or ``sleep`` (which records it)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self.now = when

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.advance(seconds)


def metering_client(emulator: Emulator, *, region: str | None = None, validate: bool = True) -> Any:
    """An unmodified boto3 Metering client pointed at ``emulator``; ``validate=False`` turns off
    botocore's own parameter checks, so that the emulator's validation is what answers."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "meteringmarketplace",
        region_name=region or emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=EMULATOR_ACCESS_KEY_ID,
        aws_secret_access_key=EMULATOR_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )
