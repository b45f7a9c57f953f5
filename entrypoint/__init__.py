"""marketplace-entrypoint: the entitlement bootstrapper for paid AWS Marketplace containers.

The public surface, all importable from here:

* `verify_signature` - verify a RegisterUsage ``Signature`` (pure; PS256 only).
* `ensure_entitled` - register usage and verify the answer in-process.
* `load_public_key_pem`, `load_trust_store` - load the seller's public keys, with every check.
* `Meter` - report custom-dimension usage with MeterUsage, once per dimension per hour, safely
  across crashes and restarts; `meter_dry_run` - the MeterUsage DryRun check.
* `LicenseLease` - a contract product's License Manager license, checked out, re-checked every
  15 minutes, floating seats extended and checked in on close; its `LeaseState`.
* `EntrypointError` and its subclasses, each with ``exit_code`` and ``diagnosis()``; `ExitCode`.

Attributes are imported on first use (PEP 562), so ``import entrypoint`` stays cheap and the
command line can install its signal handlers before the AWS SDK loads.
"""

from __future__ import annotations

from ._version import __version__

# typing.TYPE_CHECKING without importing typing (9 ms of a cold start); type checkers take a
# module-level TYPE_CHECKING = False as the same constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .bootstrap import Entitlement, ensure_entitled
    from .errors import (
        BootstrapInterrupted,
        ConfigurationError,
        EntrypointError,
        ExitCode,
        LicenseAnswerError,
        NotEntitledError,
        PlatformNotSupportedError,
        RetriesExhaustedError,
        ServiceError,
        UntrustedKeyError,
        UsageError,
        UsageRejectedError,
        VerificationError,
        WorkloadExecError,
    )
    from .keys import TrustedProduct, TrustStore, load_public_key_pem, load_trust_store
    from .license.lease import LeaseState, LicenseLease
    from .meter import Meter, meter_dry_run
    from .verify import VerifiedEntitlement, verify_signature

__all__ = [
    "BootstrapInterrupted",
    "ConfigurationError",
    "Entitlement",
    "EntrypointError",
    "ExitCode",
    "LeaseState",
    "LicenseAnswerError",
    "LicenseLease",
    "Meter",
    "NotEntitledError",
    "PlatformNotSupportedError",
    "RetriesExhaustedError",
    "ServiceError",
    "TrustStore",
    "TrustedProduct",
    "UntrustedKeyError",
    "UsageError",
    "UsageRejectedError",
    "VerificationError",
    "VerifiedEntitlement",
    "WorkloadExecError",
    "__version__",
    "ensure_entitled",
    "load_public_key_pem",
    "load_trust_store",
    "meter_dry_run",
    "verify_signature",
]

_HOMES = {
    "Entitlement": "bootstrap",
    "ensure_entitled": "bootstrap",
    "TrustStore": "keys",
    "TrustedProduct": "keys",
    "load_public_key_pem": "keys",
    "load_trust_store": "keys",
    "LeaseState": "license.lease",
    "LicenseLease": "license.lease",
    "Meter": "meter",
    "meter_dry_run": "meter",
    "VerifiedEntitlement": "verify",
    "verify_signature": "verify",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - PEP 562: any public attribute
    import importlib

    if name in _HOMES:
        module = importlib.import_module(f".{_HOMES[name]}", __name__)
    elif name in __all__:
        module = importlib.import_module(".errors", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
