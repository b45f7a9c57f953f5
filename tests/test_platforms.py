"""Each platform, end to end: the console script with only the environment that platform gives a
task, against the emulator's Metering API and platform endpoints and a local STS (moto).

Fargate: Region variables + container credentials. ECS on EC2: task metadata + container
credentials, no Region variables. EKS: IRSA variables + a projected token file. Then every
misconfiguration a seller meets in the field, with its documented exit code and diagnosis.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import CallRecord, Emulator, Principal

from .conftest import PRODUCT
from .support import WORKLOAD, Run, run_cli

ROLE = "arn:aws:iam::123456789012:role/marketplace-product"


def isolated(emulator: Emulator, **variables: str) -> dict[str, str]:
    """No ambient AWS configuration: only what the platform sets, plus the test endpoints."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": emulator.url,
        "MARKETPLACE_RETRY_BASE_DELAY": "0.01",
        "MARKETPLACE_RETRY_MAX_DELAY": "0.05",
        **variables,
    }


def fargate(emulator: Emulator, **extra: str) -> dict[str, str]:
    platform = {
        "AWS_REGION": emulator.region,
        "AWS_DEFAULT_REGION": emulator.region,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": emulator.container_credentials_uri,
        "ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri,
        "AWS_EC2_METADATA_DISABLED": "true",  # no IMDS on Fargate
    }
    return isolated(emulator, **{**platform, **extra})


def ecs_on_ec2(emulator: Emulator, **extra: str) -> dict[str, str]:
    platform = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": emulator.container_credentials_uri,
        "ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.imds_endpoint,
    }
    return isolated(emulator, **{**platform, **extra})


def run(keys_dir: Path, env: dict[str, str], tmp_path: Path, *flags: str) -> tuple[Run, Path]:
    report = tmp_path / "report.json"
    workload = [sys.executable, str(WORKLOAD), str(report)]
    result = run_cli(["--keys-dir", str(keys_dir), *flags, "--", *workload], env)
    return result, report


def assert_started(result: Run, report: Path) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "handing RegisterUsage over to botocore" not in result.stderr
    facts: dict[str, object] = json.loads(report.read_text())
    assert facts["pid"] == result.pid
    return facts


def assert_refused(result: Run, report: Path, code: ExitCode, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert not report.exists()
    assert result.last_line.startswith("marketplace-entrypoint: error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.last_line, result.last_line


def metering_calls(emulator: Emulator) -> list[CallRecord]:
    return emulator.calls("RegisterUsage")


# -- Fargate -------------------------------------------------------------------------------------


def test_fargate_registers_with_the_task_role(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    result, report = run(keys_dir, fargate(emulator), tmp_path)
    facts = assert_started(result, report)
    assert "(from AWS_REGION)" in result.stderr
    assert "credentials from the ECS task role (container credentials endpoint)" in result.stderr
    assert "warning" not in result.stderr
    call = emulator.calls("RegisterUsage")[0]
    assert call.access_key_id is not None
    assert call.access_key_id.startswith("ASIA")  # the task role's, issued by the platform
    env = dict(entry.split("=", 1) for entry in facts["environ"])  # type: ignore[attr-defined]
    assert "AWS_ACCESS_KEY_ID" not in env  # the workload's environment is untouched


def test_fargate_with_an_authorization_token_file(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(credentials_token="ecs-agent-token-123")
    token = tmp_path / "token"
    token.write_text("ecs-agent-token-123")
    env = fargate(emulator, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token))
    result, report = run(keys_dir, env, tmp_path)
    assert_started(result, report)


def test_credentials_not_ready_yet_are_retried(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The credentials endpoint refuses at first (a task's first seconds); the bootstrap waits."""
    emulator.platform.configure(credentials_failures=4)
    result, report = run(keys_dir, fargate(emulator), tmp_path)
    assert_started(result, report)
    assert "RegisterUsage attempt 1 failed: CredentialRetrievalError" in result.stderr
    served = [c.status for c in emulator.calls() if c.operation.startswith("GET /ecs/credentials")]
    assert served == [500, 500, 500, 500, 200]


def test_credentials_never_ready_exhaust_the_deadline(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(credentials_failures=10**6)
    result, report = run(keys_dir, fargate(emulator), tmp_path, "--deadline", "1")
    assert_refused(
        result, report, ExitCode.RETRIES_EXHAUSTED, "last error: CredentialRetrievalError"
    )
    assert metering_calls(emulator) == []


def test_authorization_token_file_missing(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    env = fargate(emulator, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tmp_path / "missing"))
    result, report = run(keys_dir, env, tmp_path)
    assert_refused(
        result,
        report,
        ExitCode.CONFIGURATION,
        f"cannot read {tmp_path / 'missing'}",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    )


def test_task_role_without_the_metering_policy(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(role_allowed=False)
    result, report = run(keys_dir, fargate(emulator), tmp_path)
    assert_refused(
        result,
        report,
        ExitCode.CONFIGURATION,
        "AccessDeniedException",
        "not authorized to perform: aws-marketplace:RegisterUsage",
        "allowing aws-marketplace:RegisterUsage",
    )


def test_container_credentials_uri_on_a_foreign_host_is_refused(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    env = fargate(emulator, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://203.0.113.7/creds")
    result, report = run(keys_dir, env, tmp_path)
    assert_refused(result, report, ExitCode.CONFIGURATION, "credentials configuration was refused")


# -- ECS on EC2 ----------------------------------------------------------------------------------


def test_ecs_on_ec2_finds_the_region_in_task_metadata(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    result, report = run(keys_dir, ecs_on_ec2(emulator), tmp_path)
    assert_started(result, report)
    assert f"in {emulator.region} (from ECS task metadata)" in result.stderr
    assert [c.operation for c in emulator.calls()][:1] == [
        f"GET /ecs/v4/{emulator.ecs_metadata_uri.rsplit('/', 1)[1]}/task"
    ]
    assert not any(c.operation.startswith(("GET /latest", "PUT /latest")) for c in emulator.calls())


def test_task_metadata_without_task_arn_uses_the_availability_zone(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(task_arn=False)
    result, report = run(keys_dir, ecs_on_ec2(emulator), tmp_path)
    assert_started(result, report)
    assert "(from ECS task metadata)" in result.stderr


def test_broken_task_metadata_falls_back_to_imds(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(metadata_failures=1)
    result, report = run(keys_dir, ecs_on_ec2(emulator), tmp_path)
    assert_started(result, report)
    assert "ECS task metadata gave no Region (HTTP 500); trying the next source" in result.stderr
    assert "(from EC2 instance metadata (IMDSv2))" in result.stderr


def test_no_region_anywhere_names_every_source(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.platform.configure(metadata_failures=1)
    env = ecs_on_ec2(emulator, AWS_EC2_METADATA_DISABLED="true")
    result, report = run(keys_dir, env, tmp_path)
    assert_refused(
        result,
        report,
        ExitCode.CONFIGURATION,
        "no AWS Region found (tried AWS_REGION, AWS_DEFAULT_REGION, ECS task metadata: HTTP 500",
        "set AWS_REGION",
    )
    assert metering_calls(emulator) == []


def test_node_role_from_imds_works_with_a_warning(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    env = isolated(emulator, AWS_EC2_METADATA_SERVICE_ENDPOINT=emulator.imds_endpoint)
    result, report = run(keys_dir, env, tmp_path)
    assert_started(result, report)
    assert "(from EC2 instance metadata (IMDSv2))" in result.stderr
    assert (
        "warning: credentials come from the instance's (node) role from EC2 instance metadata: "
        "AWS supports only the ECS task role and, on EKS, IRSA" in result.stderr
    )


def test_static_keys_work_with_a_warning(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY

    env = isolated(
        emulator,
        AWS_REGION=emulator.region,
        AWS_ACCESS_KEY_ID=EMULATOR_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=EMULATOR_SECRET_ACCESS_KEY,
    )
    result, report = run(keys_dir, env, tmp_path)
    assert_started(result, report)
    assert "warning: credentials come from long-term keys from AWS_ACCESS_KEY_ID" in result.stderr


# -- EKS with IRSA -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sts_url() -> Iterator[str]:
    """moto's STS server, in this process, so the emulator can look up what it issued."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def moto_principals(allowed_role: str) -> object:
    """A credential resolver for what moto's STS issued; only ``allowed_role`` may meter."""
    from moto.sts.models import sts_backends

    def resolve(access_key_id: str) -> Principal | None:
        for regions in list(sts_backends.values()):
            for backend in list(regions.values()):
                for role in backend.assumed_roles:
                    if role.access_key_id == access_key_id:
                        return Principal(
                            access_key_id=role.access_key_id,
                            secret_access_key=role.secret_access_key,
                            session_token=role.session_token,
                            arn=f"{role.role_arn}/assumed",
                            allowed=role.role_arn == allowed_role,
                        )
        return None

    return resolve


def eks(emulator: Emulator, sts: str, token_file: Path, **extra: str) -> dict[str, str]:
    """What the EKS pod identity webhook injects for IRSA, plus the local STS endpoint."""
    return isolated(
        emulator,
        AWS_ROLE_ARN=ROLE,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
        AWS_REGION=emulator.region,
        AWS_DEFAULT_REGION=emulator.region,
        AWS_STS_REGIONAL_ENDPOINTS="regional",
        AWS_ENDPOINT_URL_STS=sts,
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "serviceaccount" / "token"
    path.parent.mkdir()
    # A projected service account token is a JWT; STS validates it, the SDK only reads it.
    path.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cHJvZCJ9.c2ln")
    return path


def test_eks_irsa_registers_with_the_service_account_role(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, sts_url: str, token_file: Path
) -> None:
    emulator.add_credential_resolver(moto_principals(ROLE))  # type: ignore[arg-type]
    result, report = run(keys_dir, eks(emulator, sts_url, token_file), tmp_path)
    assert_started(result, report)
    assert "credentials from IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)" in result.stderr
    assert "warning" not in result.stderr
    access_key_id = metering_calls(emulator)[0].access_key_id
    assert access_key_id is not None
    assert access_key_id.startswith("ASIA")


def test_eks_irsa_role_without_the_metering_policy(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, sts_url: str, token_file: Path
) -> None:
    emulator.add_credential_resolver(moto_principals("arn:aws:iam::123456789012:role/other"))  # type: ignore[arg-type]
    result, report = run(keys_dir, eks(emulator, sts_url, token_file), tmp_path)
    assert_refused(
        result,
        report,
        ExitCode.CONFIGURATION,
        "AccessDeniedException",
        "aws-marketplace:RegisterUsage",
    )


def test_eks_token_file_missing_points_at_fsgroup(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, sts_url: str
) -> None:
    missing = tmp_path / "no-token"
    result, report = run(keys_dir, eks(emulator, sts_url, missing), tmp_path)
    assert_refused(result, report, ExitCode.CONFIGURATION, f"cannot read {missing}", "fsGroup")


def test_eks_sts_unreachable_is_retried_then_exhausted(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, token_file: Path
) -> None:
    with Emulator() as closed:
        nowhere = closed.url
    env = eks(emulator, nowhere, token_file)
    result, report = run(keys_dir, env, tmp_path, "--deadline", "1")
    assert_refused(result, report, ExitCode.RETRIES_EXHAUSTED, "last error: ")
    assert metering_calls(emulator) == []


def test_eks_without_irsa_has_no_credentials(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """No ServiceAccount annotation: the webhook injects nothing, the node role is not used."""
    env = isolated(emulator, AWS_REGION=emulator.region, AWS_EC2_METADATA_DISABLED="true")
    result, report = run(keys_dir, env, tmp_path)
    assert_refused(
        result, report, ExitCode.CONFIGURATION, "no AWS credentials found", "IRSA on EKS"
    )


# -- check ---------------------------------------------------------------------------------------


def test_check_reports_region_and_credential_source_without_calling(
    emulator: Emulator, keys_dir: Path
) -> None:
    result = run_cli(["check", "--keys-dir", str(keys_dir)], ecs_on_ec2(emulator))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["keys"] == f"{keys_dir}: prod-test (v1)"
    assert lines["region"] == f"{emulator.region} (from ECS task metadata)"
    assert lines["endpoint"] == emulator.url
    assert lines["credentials"] == (
        "the ECS task role (container credentials endpoint) (supported)"
    )
    assert lines["register"].startswith("not called")
    assert lines["result"] == "ready"
    assert metering_calls(emulator) == []


def test_check_call_verifies_one_registration(emulator: Emulator, keys_dir: Path) -> None:
    result = run_cli(["check", "--keys-dir", str(keys_dir), "--call"], fargate(emulator))
    assert result.returncode == 0, result.stderr
    assert "register     verified: product prod-test, key v1" in result.stdout
    assert result.stdout.splitlines()[-1] == "result       ready: entitled"
    assert len(metering_calls(emulator)) == 1


def test_check_call_fails_like_a_start(emulator: Emulator, keys_dir: Path) -> None:
    emulator.configure(PRODUCT, outcome="not-entitled")
    result = run_cli(["check", "--keys-dir", str(keys_dir), "--call"], fargate(emulator))
    assert result.returncode == ExitCode.NOT_ENTITLED
    assert result.stdout.splitlines()[-1] == "result       failed (see the error below)"
    assert result.last_line.startswith("marketplace-entrypoint: error: not entitled")


def test_check_makes_one_attempt_only(emulator: Emulator, keys_dir: Path) -> None:
    emulator.configure(PRODUCT, throttle=5)
    result = run_cli(["check", "--keys-dir", str(keys_dir), "--call"], fargate(emulator))
    assert result.returncode == ExitCode.RETRIES_EXHAUSTED
    assert "the one RegisterUsage call check makes failed: ThrottlingException" in result.stderr
    assert len(metering_calls(emulator)) == 1


def test_check_json(emulator: Emulator, keys_dir: Path) -> None:
    env = fargate(emulator, MARKETPLACE_LOG_FORMAT="json")
    result = run_cli(["check", "--keys-dir", str(keys_dir)], env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["region"] == f"{emulator.region} (from AWS_REGION)"
    assert report["result"] == "ready"


def test_check_configuration_error(emulator: Emulator, tmp_path: Path) -> None:
    result = run_cli(["check", "--keys-dir", str(tmp_path / "none")], fargate(emulator))
    assert result.returncode == ExitCode.CONFIGURATION
    assert "keys directory" in result.last_line
    assert "Traceback" not in result.stderr


def test_check_refuses_a_workload(emulator: Emulator, keys_dir: Path) -> None:
    result = run_cli(["check", "--keys-dir", str(keys_dir), "--", "true"], fargate(emulator))
    assert result.returncode == ExitCode.USAGE


def test_check_meter_dry_run(emulator: Emulator, keys_dir: Path) -> None:
    emulator.configure(PRODUCT, dimensions=("users",))
    command = ["check", "--keys-dir", str(keys_dir), "--meter-dimension", "users"]
    result = run_cli(command, fargate(emulator))
    assert result.returncode == 0, result.stderr
    assert "meter        users: DryRun accepted after 1 attempt(s)" in result.stdout
    dry_runs = emulator.calls("MeterUsage")
    assert [call.error for call in dry_runs] == ["DryRunOperation"]
    assert emulator.records() == []  # a DryRun records nothing


def test_check_meter_dry_run_unknown_dimension(emulator: Emulator, keys_dir: Path) -> None:
    emulator.configure(PRODUCT, dimensions=("users",))
    command = ["check", "--keys-dir", str(keys_dir), "--meter-dimension", "gigabytes"]
    result = run_cli(command, fargate(emulator))
    assert result.returncode == ExitCode.CONFIGURATION, result.stderr
    assert "InvalidUsageDimensionException" in result.last_line
