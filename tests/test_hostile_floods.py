"""Floods on every endpoint a start reads, through the real console script: none is read whole.

Each endpoint the bootstrap talks to (the Metering API, the container credentials endpoint, IMDS's
credentials, ECS task metadata, STS for IRSA) answers with a valid answer padded to 1 GiB, framed
each way a client can be made to read without bound: valid chunking, a chunk-size line of ``-1``
(which Python's http.client reads as "to the end of the stream"), no length at all, gzip
(``Content-Encoding``), and a gzip bomb small enough to pass the size cap (32 MiB of padding in
about 32 KiB). The bootstrap's peak RSS, as the kernel accounted it, stays that of a normal run,
and the run ends with the exit code its endpoint's failures have: a Metering answer it cannot
read is unverifiable (65), a credential source's is a transient fault retried until the deadline
(75), a Region source's leaves no Region (78, naming why). (botocore reads an IMDS answer that is
not JSON as "this instance has no role": no credentials, 78.)

Before the bound on botocore's credential fetchers (`entrypoint.awssession`), the container
credentials flood peaked at 2.1 GiB (a container with a memory limit is OOM-killed, exit 137) and
the STS one at 7 GiB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.answers import MAX_ANSWER_BYTES
from entrypoint.emulator import Emulator
from entrypoint.emulator.faults import Endpoint, Fault
from entrypoint.region import MAX_METADATA_BYTES

from .conftest import PRODUCT
from .support import base_env, run_cli_peak_rss

GIB = 1024**3
# Bounded runs of the console script stay near 50 MiB; a flood read whole is a gigabyte or more.
PEAK_MIB = 160
NO_KEYS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
QUICK = {
    "MARKETPLACE_CONNECT_TIMEOUT": "1",
    "MARKETPLACE_READ_TIMEOUT": "1",
    "MARKETPLACE_RETRY_BASE_DELAY": "0.2",
    "MARKETPLACE_RETRY_MAX_DELAY": "0.4",
}


@dataclass(frozen=True)
class Flood:
    fault: Fault
    size: int
    label: str


FLOODS = [
    Flood(Fault.HUGE_CHUNKED_BODY, GIB, "chunked"),
    Flood(Fault.NEGATIVE_CHUNK, GIB, "negative-chunk"),
    Flood(Fault.UNDELIMITED, GIB, "no-length"),
    Flood(Fault.GZIP, GIB, "gzip"),
    Flood(Fault.GZIP, 32 * 1024 * 1024, "gzip-bomb-under-the-cap"),
]


@dataclass(frozen=True)
class Target:
    """An endpoint, the environment that makes a start read it, and how that start must end."""

    name: str
    environment: Callable[[Emulator, Path], dict[str, str | None]]
    code: ExitCode
    fragment: str  # in the diagnosis when the flood is refused by its size
    inject: Callable[[Emulator, Flood], None]
    # The exit code when the flood fits under the cap (the gzip bomb) and what it says is read
    # as what it is: bytes that are not an answer.
    unreadable: ExitCode | None = None


def _endpoint(endpoint: Endpoint) -> Callable[[Emulator, Flood], None]:
    def inject(emulator: Emulator, flood: Flood) -> None:
        emulator.faults.inject_endpoint(endpoint, flood.fault, value=flood.size)

    return inject


def _metering(emulator: Emulator, flood: Flood) -> None:
    emulator.faults.inject(PRODUCT, flood.fault, value=flood.size)


def _irsa(emulator: Emulator, tmp_path: Path) -> dict[str, str | None]:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cHJvZCJ9.c2ln")
    return {
        **NO_KEYS,
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/marketplace-product",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ENDPOINT_URL_STS": emulator.sts_endpoint,
    }


REFUSED = "CredentialAnswerRefused: the credentials answer from 127.0.0.1:"
TARGETS = [
    Target(
        "metering",
        lambda _emulator, _tmp: {},
        ExitCode.BAD_SIGNATURE,
        f"is over the {MAX_ANSWER_BYTES}-byte cap",
        _metering,
    ),
    Target(
        "container-credentials",
        lambda emulator, _tmp: {
            **NO_KEYS,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": emulator.container_credentials_uri,
        },
        ExitCode.RETRIES_EXHAUSTED,
        REFUSED,
        _endpoint(Endpoint.CONTAINER_CREDENTIALS),
    ),
    Target(
        "imds-credentials",
        lambda emulator, _tmp: {
            **NO_KEYS,
            "AWS_EC2_METADATA_DISABLED": None,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.imds_endpoint,
        },
        ExitCode.RETRIES_EXHAUSTED,
        REFUSED,
        _endpoint(Endpoint.IMDS_CREDENTIALS),
        # botocore's IMDS fetcher asks again for an answer that is not JSON, then takes the
        # instance to have no role: no credentials anywhere.
        unreadable=ExitCode.CONFIGURATION,
    ),
    Target(
        "ecs-task-metadata",
        lambda emulator, _tmp: {
            "AWS_REGION": None,
            "ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri,
        },
        ExitCode.CONFIGURATION,
        f"ECS task metadata: answer over {MAX_METADATA_BYTES} bytes",
        _endpoint(Endpoint.TASK_METADATA),
    ),
    Target(
        "sts",
        _irsa,
        ExitCode.RETRIES_EXHAUSTED,
        REFUSED,
        _endpoint(Endpoint.STS),
    ),
]


@pytest.mark.parametrize("flood", FLOODS, ids=[f.label for f in FLOODS])
@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_a_flood_is_never_read_into_memory(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, target: Target, flood: Flood
) -> None:
    target.inject(emulator, flood)
    env = base_env(emulator, **QUICK, **target.environment(emulator, tmp_path))
    report = tmp_path / "started"
    run, peak_mib = run_cli_peak_rss(
        ["--keys-dir", str(keys_dir), "--deadline", "2", "--", "touch", str(report)], env
    )
    refused_by_size = flood.size > 64 * 1024 * 1024
    code = target.code if refused_by_size else (target.unreadable or target.code)
    assert run.returncode == code, run.stderr
    assert not report.exists(), "the workload started"
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    if refused_by_size:  # and said so
        assert target.fragment in run.last_line, run.last_line
    assert peak_mib < PEAK_MIB, f"peak RSS {peak_mib:.0f} MiB: the flood was read into memory"
    served = [call for call in emulator.calls() if (call.error or "").startswith("fault:")]
    assert served, "the flood was never asked for: the test did not test anything"


def test_the_sts_stand_in_answers_when_no_flood_is_planned(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The control for the STS floods: the same environment without a fault starts the workload
    with credentials the emulator's STS issued."""
    env = base_env(emulator, **QUICK, **_irsa(emulator, tmp_path))
    report = tmp_path / "started"
    run, _ = run_cli_peak_rss(["--keys-dir", str(keys_dir), "--", "touch", str(report)], env)
    assert run.returncode == 0, run.stderr
    assert report.exists()
    assert "credentials from IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)" in run.stderr
    access_key_id = emulator.calls("RegisterUsage")[0].access_key_id
    assert access_key_id is not None
    assert access_key_id.startswith("ASIA")
