"""Where the task's AWS credentials came from, and whether AWS supports that for metering.

Credentials come from botocore's own provider chain; this module only names the source for the
log and the ``check`` command, and says when it is one AWS does not support for Marketplace
metering. AWS supports the ECS task role (container credentials endpoint) and, on EKS, IAM roles
for service accounts (IRSA: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``). It says EKS Pod
Identity, node (instance) roles and long-term keys are not supported: they may work, but the
entrypoint warns.
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from .logs import event

__all__ = ["CredentialSource", "StaticCredentials", "announce_credentials", "describe_credentials"]


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Explicit credentials (the demo and tests). Production uses botocore's provider chain."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"StaticCredentials(access_key_id={self.access_key_id[:4]}…)"


# botocore's ContainerMetadataFetcher: 169.254.170.23 / fd00:ec2::23 is the EKS Pod Identity agent.
_POD_IDENTITY_HOSTS = frozenset({"169.254.170.23", "fd00:ec2::23"})
_ADVICE = "AWS supports only the ECS task role and, on EKS, IRSA for Marketplace metering"

# botocore's credential provider METHOD names.
_SOURCES: Mapping[str, tuple[str, bool]] = {
    "container-role": ("the ECS task role (container credentials endpoint)", True),
    "assume-role-with-web-identity": ("IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)", True),
    "env": ("long-term keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY", False),
    "iam-role": ("the instance's (node) role from EC2 instance metadata", False),
    "shared-credentials-file": ("the shared credentials file", False),
    "config-file": ("the AWS config file", False),
    "assume-role": ("an assume-role profile", False),
    "custom-process": ("a credential_process", False),
    "sso": ("AWS IAM Identity Center (SSO)", False),
    "explicit": ("credentials passed in by the caller", True),
}


@dataclass(frozen=True, slots=True)
class CredentialSource:
    method: str
    description: str
    supported: bool

    @property
    def warning(self) -> str | None:
        if self.supported:
            return None
        return (
            f"credentials come from {self.description}: {_ADVICE}; they may work here, but "
            "give the task an IAM role (task role or IRSA) for production"
        )


def _is_pod_identity(environ: Mapping[str, str]) -> bool:
    host = urllib.parse.urlsplit(environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")).hostname
    if not host:
        return False
    try:
        return str(ipaddress.ip_address(host)) in _POD_IDENTITY_HOSTS
    except ValueError:
        return False


def describe_credentials(method: str | None, environ: Mapping[str, str]) -> CredentialSource:
    """Name the source botocore reported (``Credentials.method``) for operators."""
    if method == "container-role" and _is_pod_identity(environ):
        return CredentialSource(method, "EKS Pod Identity", supported=False)
    description, supported = _SOURCES.get(method or "", (f"botocore source {method!r}", False))
    return CredentialSource(method or "unknown", description, supported)


def announce_credentials(method: str | None, environ: Mapping[str, str]) -> CredentialSource:
    """Describe the source and log it once: info when supported, a warning when not."""
    source = describe_credentials(method, environ)
    warning = source.warning
    event(
        logging.WARNING if warning else logging.INFO,
        warning or f"credentials from {source.description}",
        event="credentials",
        method=source.method,
        supported=source.supported,
    )
    return source
