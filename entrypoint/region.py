"""The task's AWS Region, found the way the container platforms provide it.

RegisterUsage must be called in the Region the task runs in (else InvalidRegionException), and AWS
says never to hard-code it. boto3 reads ``AWS_DEFAULT_REGION`` but not ``AWS_REGION``, so the
region is resolved here and passed to the client explicitly.

The resolver is a chain of sources tried in order; the first that answers wins and is named in
the log:

1. ``AWS_REGION`` (Fargate, the EKS IRSA webhook),
2. ``AWS_DEFAULT_REGION`` (Fargate, the IRSA webhook),
3. ECS task metadata v4, ``$ECS_CONTAINER_METADATA_URI_V4/task``: the Region field of ``TaskARN``
   (``arn:<partition>:ecs:<region>:<account>:task/...``), else ``AvailabilityZone`` minus its
   letter. ECS on EC2 has historically set neither variable, but always serves this endpoint.
4. EC2 instance metadata, IMDSv2 (a session token first, then ``placement/region``), honouring
   ``AWS_EC2_METADATA_DISABLED`` and ``AWS_EC2_METADATA_SERVICE_ENDPOINT[_MODE]`` as botocore does.

Metadata lookups go through botocore's HTTP session with a short timeout (1 s, as botocore's
IMDS default), never a proxy, and the bound every answer gets (`entrypoint.capped`): at most
`MAX_METADATA_BYTES`, within the timeout as a whole. A source that fails says why, and the
reasons are part of the diagnosis when no source answers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .environment import check_url
from .errors import ConfigurationError, one_line
from .logs import event

__all__ = [
    "EcsTaskMetadataRegion",
    "EnvironmentRegion",
    "InstanceMetadataRegion",
    "RegionLookupError",
    "RegionSource",
    "ResolvedRegion",
    "default_region_chain",
    "imds_endpoint",
    "resolve_region",
    "validate_region",
]

# us-east-1, us-gov-west-1, cn-north-1, eu-isoe-west-1, ap-southeast-5 ...
_REGION = re.compile(r"[a-z]{2,}(-[a-z0-9]+)*-[0-9]{1,2}")
# An Availability Zone is its Region plus one letter; Local and Wavelength Zones
# (us-west-2-lax-1a) are not, and do not match.
_AVAILABILITY_ZONE = re.compile(r"([a-z]{2}(?:-[a-z]+)+-[0-9]{1,2})[a-z]")
METADATA_TIMEOUT = 1.0
# Task metadata is a few KiB; a region is a few bytes. Anything larger is not an answer.
MAX_METADATA_BYTES = 256 * 1024
IMDS_TOKEN_TTL_SECONDS = "21600"  # noqa: S105 - a TTL in seconds, not a secret


class RegionLookupError(Exception):
    """A metadata source was there but could not answer; the chain goes on and says why."""


@dataclass(frozen=True, slots=True)
class ResolvedRegion:
    name: str
    source: str


class RegionSource(Protocol):
    """One place a region may come from. ``lookup`` returns ``None`` when it has nothing."""

    @property
    def source(self) -> str: ...

    def lookup(self) -> str | None: ...


def validate_region(value: str, source: str) -> str:
    """Return ``value`` if it is shaped like an AWS Region name, else `ConfigurationError`."""
    if _REGION.fullmatch(value) is None:
        raise ConfigurationError(
            f"{source}={one_line(value, 64)!r} is not an AWS Region name",
            remedy="set it to the Region the task runs in, such as us-east-1",
        )
    return value


@dataclass(frozen=True, slots=True)
class EnvironmentRegion:
    """An environment variable; empty counts as unset, as in the AWS SDKs."""

    variable: str
    environ: Mapping[str, str]

    @property
    def source(self) -> str:
        return self.variable

    def lookup(self) -> str | None:
        value = self.environ.get(self.variable, "").strip()
        return validate_region(value, self.variable) if value else None


def _http(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = METADATA_TIMEOUT,
) -> str:
    """One small request to a link-local metadata endpoint, through botocore's HTTP session with
    the bound every answer gets (`entrypoint.capped.fetch`): the body of a 200, or raise."""
    from botocore.exceptions import BotoCoreError

    from .capped import OversizedAnswer, fetch

    try:
        status, body = fetch(
            method, url, headers=headers or {}, timeout=timeout, max_bytes=MAX_METADATA_BYTES
        )
    except OversizedAnswer:
        raise RegionLookupError(f"answer over {MAX_METADATA_BYTES} bytes") from None
    except (BotoCoreError, ValueError) as exc:
        # botocore's message names the URL; the cause (refused, unreachable...) is in its kwargs.
        cause = getattr(exc, "kwargs", {}).get("error")
        detail = f"{exc} ({cause})" if cause is not None else str(exc)
        raise RegionLookupError(f"{type(exc).__name__}: {one_line(detail, 200)}") from None
    if status != 200:
        raise RegionLookupError(f"HTTP {status}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise RegionLookupError("answer is not UTF-8") from None


def imds_endpoint(environ: Mapping[str, str]) -> str:
    """The IMDS base URL botocore would use (its `IMDSFetcher` chooses and checks it):
    AWS_EC2_METADATA_SERVICE_ENDPOINT, else the IPv4 or (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
    =IPv6) IPv6 link-local address; ends with ``/``. `ConfigurationError` for a malformed one."""
    from botocore.exceptions import InvalidIMDSEndpointError
    from botocore.utils import IMDSFetcher

    endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "").strip()
    if endpoint:
        check_url("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
    mode = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").strip().lower()
    config = {"ec2_metadata_service_endpoint": endpoint or None}
    config["ec2_metadata_service_endpoint_mode"] = mode
    try:
        base = str(IMDSFetcher(env=dict(environ), config=config).get_base_url())
    except InvalidIMDSEndpointError as exc:
        raise ConfigurationError(
            f"botocore refuses the IMDS endpoint: {one_line(exc, 160)}",
            remedy="fix AWS_EC2_METADATA_SERVICE_ENDPOINT / AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        ) from None
    return base.rstrip("/") + "/"


@dataclass(frozen=True, slots=True)
class EcsTaskMetadataRegion:
    """The Region of the ECS task, from task metadata v4 (ECS on EC2 and Fargate)."""

    environ: Mapping[str, str]
    timeout: float = METADATA_TIMEOUT
    source: str = field(default="ECS task metadata", init=False)

    def lookup(self) -> str | None:
        base = self.environ.get("ECS_CONTAINER_METADATA_URI_V4", "").strip()
        if not base:
            return None
        check_url("ECS_CONTAINER_METADATA_URI_V4", base)
        try:
            document = json.loads(_http("GET", base.rstrip("/") + "/task", timeout=self.timeout))
        except (ValueError, RecursionError):
            raise RegionLookupError("task metadata is not JSON") from None
        if not isinstance(document, dict):
            raise RegionLookupError("task metadata is not a JSON object")
        arn = document.get("TaskARN")
        if isinstance(arn, str) and arn.count(":") >= 5:
            _, _, service, region, _, _ = arn.split(":", 5)
            if service == "ecs" and region:
                return validate_region(region, "TaskARN in ECS task metadata")
        zone = document.get("AvailabilityZone")
        if isinstance(zone, str):
            match = _AVAILABILITY_ZONE.fullmatch(zone)
            if match is not None:
                return match.group(1)
        raise RegionLookupError("task metadata has neither a TaskARN nor an Availability Zone")


@dataclass(frozen=True, slots=True)
class InstanceMetadataRegion:
    """The Region of the EC2 instance, from IMDSv2 (a session token, then placement/region)."""

    environ: Mapping[str, str]
    timeout: float = METADATA_TIMEOUT
    source: str = field(default="EC2 instance metadata (IMDSv2)", init=False)

    def lookup(self) -> str | None:
        if self.environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
            return None
        endpoint = imds_endpoint(self.environ)
        token = _http(
            "PUT",
            endpoint + "latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL_SECONDS},
            timeout=self.timeout,
        ).strip()
        region = _http(
            "GET",
            endpoint + "latest/meta-data/placement/region",
            headers={"X-aws-ec2-metadata-token": token},
            timeout=self.timeout,
        ).strip()
        return validate_region(region, "placement/region in EC2 instance metadata")


def default_region_chain(environ: Mapping[str, str]) -> Sequence[RegionSource]:
    """``AWS_REGION``, ``AWS_DEFAULT_REGION``, ECS task metadata v4, then IMDSv2."""
    return (
        EnvironmentRegion("AWS_REGION", environ),
        EnvironmentRegion("AWS_DEFAULT_REGION", environ),
        EcsTaskMetadataRegion(environ),
        InstanceMetadataRegion(environ),
    )


def resolve_region(chain: Iterable[RegionSource]) -> ResolvedRegion:
    """The first region the chain yields, or `ConfigurationError` naming every source tried
    (and why a metadata source that was there could not answer)."""
    tried: list[str] = []
    for source in chain:
        try:
            value = source.lookup()
        except RegionLookupError as failure:
            event(
                logging.WARNING,
                f"{source.source} gave no Region ({failure}); trying the next source",
                event="region_source_failed",
                source=source.source,
                reason=str(failure),
            )
            tried.append(f"{source.source}: {failure}")
            continue
        if value:
            return ResolvedRegion(name=value, source=source.source)
        tried.append(source.source)
    raise ConfigurationError(
        f"no AWS Region found (tried {', '.join(tried) or 'nothing'})",
        remedy="set AWS_REGION (or AWS_DEFAULT_REGION) to the Region the task runs in",
    )
