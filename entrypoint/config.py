"""Settings: one frozen dataclass with its limits, filled from flags, then the environment.

Every value is validated before any network call. A bad flag is a usage error (exit 64); a bad
environment variable is a configuration error (exit 78); both name the flag and the variable.

The keys directory is deliberately *not* readable from the environment: trust comes from the
image (its ENTRYPOINT), never from the runtime environment alone. The product code and key version
may come from the environment, but only select among what the keys directory already trusts. So
does the permission to send License Manager calls elsewhere than AWS (``--allow-license-endpoint-
override``): a flag in ENTRYPOINT only, since a contract product's answer carries no signature.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import ConfigurationError, UsageError, one_line
from .keys import DEFAULT_KEYS_DIR, TrustedProduct, TrustStore

__all__ = [
    "ENV",
    "LogFormat",
    "Settings",
    "Target",
    "parse_settings",
    "select_product",
    "select_target",
]

T = TypeVar("T")

# ProductCode in the Metering API model (botocore service-2.json): 1..255 of [-a-zA-Z0-9/=:_.@].
_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")
# AWS asks for retries "for up to 30 minutes"; past 6 hours it gives no metering guarantee.
DEFAULT_DEADLINE = 1800.0
MAX_DEADLINE = 6 * 3600.0


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


# Flag -> environment variable. The keys directory has no variable, on purpose.
ENV: Mapping[str, str] = {
    "product_code": "MARKETPLACE_PRODUCT_CODE",
    "public_key_version": "MARKETPLACE_PUBLIC_KEY_VERSION",
    "deadline": "MARKETPLACE_RETRY_DEADLINE",
    "log_format": "MARKETPLACE_LOG_FORMAT",
    "connect_timeout": "MARKETPLACE_CONNECT_TIMEOUT",
    "read_timeout": "MARKETPLACE_READ_TIMEOUT",
    "retry_base_delay": "MARKETPLACE_RETRY_BASE_DELAY",
    "retry_max_delay": "MARKETPLACE_RETRY_MAX_DELAY",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a bootstrap needs to know before it touches the network.

    Defaults: RegisterUsage retried for AWS's recommended 30 minutes, with capped exponential
    backoff (1 s doubling to 30 s, full jitter) and per-attempt timeouts of 5 s to connect and 10 s
    to read (NGINX Ingress Controller uses 5 s for the whole call, without retries).
    """

    keys_dir: Path = DEFAULT_KEYS_DIR
    # Honour License Manager endpoint and CA bundle overrides from the environment (a flag only).
    allow_license_endpoint_override: bool = False
    product_code: str | None = None
    public_key_version: int | None = None
    deadline: float = DEFAULT_DEADLINE
    log_format: LogFormat = LogFormat.TEXT
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    # Where each value came from ("--deadline", "MARKETPLACE_RETRY_DEADLINE", "default").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.retry_max_delay < self.retry_base_delay:
            raise ConfigurationError(
                f"retry max delay {self.retry_max_delay:g}s is under the base delay "
                f"{self.retry_base_delay:g}s",
                remedy=f"set {ENV['retry_max_delay']} >= {ENV['retry_base_delay']}",
            )


@dataclass(frozen=True, slots=True)
class Target:
    """What RegisterUsage is called for, and the key its answer must verify against."""

    product_code: str
    public_key_version: int
    public_key: rsa.RSAPublicKey


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{text!r} is outside {low:g}..{high:g} seconds")
        return value

    return parse


def _product_code(text: str) -> str:
    if _PRODUCT_CODE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a product code (1-255 of letters, digits and -/=:_.@)")
    return text


def _key_version(text: str) -> int:
    if not text.isdecimal() or not text.isascii():
        raise ValueError(f"{text!r} is not a whole number")
    value = int(text)
    if not 1 <= value <= 999_999_999:
        raise ValueError(f"{text!r} is not a key version (1 or more)")
    return value


def _log_format(text: str) -> LogFormat:
    try:
        return LogFormat(text.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r} is not one of: text, json") from None


_PARSERS: Mapping[str, Callable[[str], object]] = {
    "product_code": _product_code,
    "public_key_version": _key_version,
    "deadline": _seconds(0.1, MAX_DEADLINE),
    "log_format": _log_format,
    "connect_timeout": _seconds(0.05, 300.0),
    "read_timeout": _seconds(0.05, 300.0),
    "retry_base_delay": _seconds(0.001, 300.0),
    "retry_max_delay": _seconds(0.001, 3600.0),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_settings(
    given: Mapping[str, str | None],
    environ: Mapping[str, str],
    *,
    keys_dir: Path | str | None = None,
    allow_license_endpoint_override: bool = False,
    given_as: Literal["flag", "argument"] = "flag",
) -> Settings:
    """Build `Settings` from given values (``None`` = not given), then the environment.

    ``given`` holds command-line flags (a bad one is a `UsageError` naming the flag) or, for the
    in-process API, keyword arguments (a bad one is a `ConfigurationError` naming the argument).
    Empty environment variables count as unset, as in the AWS SDKs.
    """
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name, parser in _PARSERS.items():
        given_value = given.get(name)
        env_name = ENV[name]
        if given_value is not None:
            text, error = given_value, UsageError if given_as == "flag" else ConfigurationError
            source = _flag(name) if given_as == "flag" else name
        elif environ.get(env_name, ""):
            text, source, error = environ[env_name], env_name, ConfigurationError
        else:
            sources[name] = "default"
            continue
        try:
            values[name] = parser(text)
        except ValueError as exc:
            raise error(
                f"{source}={one_line(text, 80)!r} is invalid: {exc}",
                remedy=f"fix {_flag(name)} / {env_name}",
            ) from None
        sources[name] = source
    if keys_dir is not None:
        values["keys_dir"] = Path(keys_dir)
        sources["keys_dir"] = "--keys-dir"
    if allow_license_endpoint_override:
        values["allow_license_endpoint_override"] = True
        sources["allow_license_endpoint_override"] = "--allow-license-endpoint-override"
    return Settings(**values, sources=sources)  # type: ignore[arg-type]


def select_product(settings: Settings, trust: TrustStore) -> TrustedProduct:
    """The configured product, which must be trusted; else the only trusted product."""
    code = settings.product_code
    if code is None:
        if len(trust.products) != 1:
            raise ConfigurationError(
                f"this image trusts several products ({trust.describe()}) and none was chosen",
                remedy=f"set {ENV['product_code']} or --product-code to one of them",
            )
        (code,) = trust.products
    return trust.product(code)


def select_target(settings: Settings, trust: TrustStore) -> Target:
    """Choose the product and key version from settings and the trusted keys.

    Product: `select_product`; it must be a metered product (public keys, not a contract). Key
    version: the configured one, which must be present; else the highest present.
    """
    product = select_product(settings, trust)
    code = product.code
    if product.contract is not None:
        raise ConfigurationError(
            f"product {code} is contract-priced ({product.contract.describe()}): it is checked "
            "with License Manager and has no RegisterUsage key",
            remedy="use the bootstrap or entrypoint.LicenseLease for contract products",
        )
    version = settings.public_key_version or product.latest_version
    key = trust.key(code, version)
    return Target(product_code=code, public_key_version=version, public_key=key)
