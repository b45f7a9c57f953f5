"""The task's AWS Region, found the way the container platforms provide it.

RegisterUsage must be called in the Region the task runs in (else InvalidRegionException), and AWS
says never to hard-code it. boto3 reads ``AWS_DEFAULT_REGION`` but not ``AWS_REGION``, so the
region is resolved here and passed to the client explicitly.

The resolver is a chain of sources tried in order; the first that answers wins and is named in
the log. Fargate sets both variables; the EKS IRSA webhook sets both when configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import ConfigurationError, one_line

__all__ = [
    "EnvironmentRegion",
    "RegionSource",
    "ResolvedRegion",
    "default_region_chain",
    "resolve_region",
    "validate_region",
]

# us-east-1, us-gov-west-1, cn-north-1, eu-isoe-west-1, ap-southeast-5 ...
_REGION = re.compile(r"[a-z]{2,}(-[a-z0-9]+)*-[0-9]{1,2}")


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


def default_region_chain(environ: Mapping[str, str]) -> Sequence[RegionSource]:
    """``AWS_REGION``, then ``AWS_DEFAULT_REGION``."""
    return (
        EnvironmentRegion("AWS_REGION", environ),
        EnvironmentRegion("AWS_DEFAULT_REGION", environ),
    )


def resolve_region(chain: Iterable[RegionSource]) -> ResolvedRegion:
    """The first region the chain yields, or `ConfigurationError` naming every source tried."""
    tried: list[str] = []
    for source in chain:
        value = source.lookup()
        if value:
            return ResolvedRegion(name=value, source=source.source)
        tried.append(source.source)
    raise ConfigurationError(
        f"no AWS Region found (tried {', '.join(tried) or 'nothing'})",
        remedy="set AWS_REGION (or AWS_DEFAULT_REGION) to the Region the task runs in",
    )
