"""Naming the credential source, and which sources AWS supports for metering."""

from __future__ import annotations

import pytest

from entrypoint.credentials import describe_credentials


@pytest.mark.parametrize(
    ("method", "supported", "fragment"),
    [
        ("container-role", True, "ECS task role"),
        ("assume-role-with-web-identity", True, "IRSA"),
        ("env", False, "long-term keys"),
        ("iam-role", False, "(node) role"),
        ("shared-credentials-file", False, "shared credentials file"),
        ("sso", False, "SSO"),
        ("something-new", False, "botocore source 'something-new'"),
        (None, False, "botocore source"),
    ],
)
def test_sources(method: str | None, supported: bool, fragment: str) -> None:
    source = describe_credentials(method, {})
    assert source.supported is supported
    assert fragment in source.description
    assert (source.warning is None) is supported


@pytest.mark.parametrize("host", ["169.254.170.23", "[fd00:ec2::23]"])
def test_eks_pod_identity_is_named_and_warned(host: str) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{host}/v1/credentials"}
    source = describe_credentials("container-role", env)
    assert source.description == "EKS Pod Identity"
    assert source.warning is not None
    assert "IRSA" in source.warning


def test_ecs_agent_address_is_the_task_role() -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/v2/credentials/x"}
    assert describe_credentials("container-role", env).supported
