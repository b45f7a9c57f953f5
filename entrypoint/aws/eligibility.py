"""Endpoints of the standard partitions, and when the lean client must leave the work to botocore.

Endpoints follow botocore's rules for these services (``https://<service>.<region>.<dnsSuffix>``,
the endpoint rule sets of ``meteringmarketplace`` and ``sts`` with ``sts_regional_endpoints =
regional``, botocore's default), with the standard overrides ``AWS_ENDPOINT_URL_<SERVICE>`` and
``AWS_ENDPOINT_URL`` unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true. Partitions and their
Region patterns are those of botocore's ``data/partitions.json``; the isolated partitions are left
to botocore.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV_SERVICE_IDS", "endpoint_for", "lean_unsupported"]

# partition id -> (regionRegex, dnsSuffix), from botocore/data/partitions.json.
_PARTITIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("aws", re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$"), "amazonaws.com"),
    ("aws-cn", re.compile(r"^cn\-\w+\-\d+$"), "amazonaws.com.cn"),
    ("aws-us-gov", re.compile(r"^us\-gov\-\w+\-\d+$"), "amazonaws.com"),
)
# Service -> (endpoint prefix, suffix of AWS_ENDPOINT_URL_<...> from the botocore service id).
ENV_SERVICE_IDS: Mapping[str, tuple[str, str]] = {
    "meteringmarketplace": ("metering.marketplace", "MARKETPLACE_METERING"),
    "sts": ("sts", "STS"),
}
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_TRUE = ("1", "true", "yes", "on")


def _dns_suffix(region: str) -> str | None:
    for _, pattern, suffix in _PARTITIONS:
        if pattern.match(region):
            return suffix
    return None


def _configured_endpoint(service: str, environ: Mapping[str, str]) -> str | None:
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return None
    _, env_suffix = ENV_SERVICE_IDS[service]
    for name in (f"AWS_ENDPOINT_URL_{env_suffix}", "AWS_ENDPOINT_URL"):
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def endpoint_for(service: str, region: str, environ: Mapping[str, str]) -> str | None:
    """The endpoint botocore would use for ``service`` in ``region``; None if not a standard
    partition (botocore must resolve it)."""
    configured = _configured_endpoint(service, environ)
    if configured is not None:
        return configured
    suffix = _dns_suffix(region)
    if suffix is None:
        return None
    prefix, _ = ENV_SERVICE_IDS[service]
    return f"https://{prefix}.{region}.{suffix}"


def _file_has_content(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def lean_unsupported(region: str, environ: Mapping[str, str]) -> str | None:
    """Why the lean client must not handle this environment, or None if it may.

    Anything that changes what botocore would do beyond what the lean client implements sends the
    work to botocore: profiles and config files (credential_process, SSO, assume-role chains,
    per-profile endpoints and CA bundles), legacy boto config, proxies, FIPS and dual-stack
    endpoints, legacy global STS, and Regions outside the standard partitions.
    """
    choice = environ.get("MARKETPLACE_AWS_CLIENT", "auto").strip().lower() or "auto"
    if choice == "botocore":
        return "MARKETPLACE_AWS_CLIENT=botocore"
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CREDENTIAL_FILE", "BOTO_CONFIG"):
        if environ.get(name, "").strip():
            return f"{name} is set"
    for name in _PROXY_VARIABLES:
        if environ.get(name, "").strip() or environ.get(name.lower(), "").strip():
            return "proxy settings are present"
    for name in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        if environ.get(name, "").strip().lower() in _TRUE:
            return f"{name} is set"
    if environ.get("AWS_STS_REGIONAL_ENDPOINTS", "").strip().lower() == "legacy":
        return "AWS_STS_REGIONAL_ENDPOINTS=legacy"
    home = Path(environ.get("HOME") or "/nonexistent")
    files = [
        Path(environ.get("AWS_CONFIG_FILE") or home / ".aws" / "config"),
        Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"),
        Path("/etc/boto.cfg"),
        home / ".boto",
    ]
    for path in files:
        if _file_has_content(path):
            return f"{path} exists"
    if endpoint_for("meteringmarketplace", region, environ) is None:
        return f"{region} is not in a standard partition"
    return None
