"""Every way a bootstrap can end, as exit codes and errors that carry them.

Errors are split by the source of the fault, as tuf and pyjwt do:

* the operator's invocation or configuration (`UsageError`, `ConfigurationError`),
* untrusted data that failed verification (`VerificationError`, and `LicenseAnswerError` for a
  License Manager answer that is malformed or not current),
* the Metering service's answer (`NotEntitledError`, `PlatformNotSupportedError`, `ServiceError`,
  and `UsageRejectedError` for metering records the service refused),
* the network or platform over time (`RetriesExhaustedError`), and
* the process itself (`BootstrapInterrupted`, `WorkloadExecError`).

Each error knows its exit code and renders a one-line diagnosis with a remedy (sigstore's
``Error.diagnostics()``); ``main()`` catches `EntrypointError` once. Exit codes follow
``sysexits.h`` where one fits, and tini's conventions for exec failures and signals.
"""

from __future__ import annotations

import enum
import signal

__all__ = [
    "BootstrapInterrupted",
    "ConfigurationError",
    "EntrypointError",
    "ExitCode",
    "LicenseAnswerError",
    "NotEntitledError",
    "PlatformNotSupportedError",
    "RetriesExhaustedError",
    "ServiceError",
    "UntrustedKeyError",
    "UsageError",
    "UsageRejectedError",
    "VerificationError",
    "WorkloadExecError",
]

# A diagnosis is one line, and parts of it (service messages, claim values) come from untrusted
# sources: cap what any one part may add.
_MAX_PART = 300


class ExitCode(enum.IntEnum):
    """Exit statuses of ``marketplace-entrypoint``; the README lists them for operators."""

    OK = 0
    USAGE = 64  # EX_USAGE: bad flags or no workload to exec
    BAD_SIGNATURE = 65  # EX_DATAERR: the signed answer did not verify
    PLATFORM_NOT_SUPPORTED = 69  # EX_UNAVAILABLE: not on ECS, EKS or Fargate
    INTERNAL = 70  # EX_SOFTWARE: a bug in marketplace-entrypoint
    RETRIES_EXHAUSTED = 75  # EX_TEMPFAIL: throttling/faults outlasted the deadline
    SERVICE_ERROR = 76  # EX_PROTOCOL: the service refused with an error we do not know
    NOT_ENTITLED = 77  # EX_NOPERM: the buyer has no subscription
    CONFIGURATION = 78  # EX_CONFIG: keys, product, region, credentials, IAM
    WORKLOAD_NOT_EXECUTABLE = 126  # tini/POSIX shell convention
    WORKLOAD_NOT_FOUND = 127  # tini/POSIX shell convention
    INTERRUPTED_SIGINT = 128 + signal.SIGINT  # 130
    INTERRUPTED_SIGTERM = 128 + signal.SIGTERM  # 143


def one_line(text: object, limit: int = _MAX_PART) -> str:
    """Render ``text`` on one printable line of at most ``limit`` characters.

    Used for every fragment of a diagnosis that did not come from our own source code, so that a
    hostile service message cannot forge extra log lines or flood the terminal.
    """
    raw = str(text)
    cleaned = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in raw)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


class EntrypointError(Exception):
    """Base of every error marketplace-entrypoint raises on purpose.

    ``reason`` says what went wrong, ``remedy`` what the operator can do; both stay on one line.
    """

    exit_code: ExitCode = ExitCode.INTERNAL
    summary: str = "error"

    def __init__(self, reason: str, *, remedy: str | None = None) -> None:
        self.reason = one_line(reason, limit=4 * _MAX_PART)
        self.remedy = one_line(remedy, limit=2 * _MAX_PART) if remedy else None
        super().__init__(self.reason)

    def diagnosis(self) -> str:
        """The one line an operator reads: ``<summary>: <reason>. <remedy>``."""
        line = f"{self.summary}: {self.reason}"
        if self.remedy:
            line = f"{line}; {self.remedy}"
        return line


class UsageError(EntrypointError):
    """The command line itself is wrong (flag values, missing workload)."""

    exit_code = ExitCode.USAGE
    summary = "usage error"


class ConfigurationError(EntrypointError):
    """The operator's configuration is wrong: keys, product, region, credentials, IAM, settings."""

    exit_code = ExitCode.CONFIGURATION
    summary = "configuration error"


class UntrustedKeyError(ConfigurationError):
    """A public key was refused: not RSA, too small, denylisted, unreadable or not PEM."""

    summary = "untrusted key"


class VerificationError(EntrypointError):
    """The Metering answer failed verification; the workload must not start."""

    exit_code = ExitCode.BAD_SIGNATURE
    summary = "bad signature"


class LicenseAnswerError(VerificationError):
    """A License Manager checkout answer that cannot be relied on: malformed, already expired,
    or issued in the future. It carries no signature a seller can check, so its shape and its
    validity window are all there is to check; the workload must not start on it."""

    summary = "bad license answer"


class NotEntitledError(EntrypointError):
    """RegisterUsage answered CustomerNotEntitledException, or License Manager found no license
    covering what the image requires."""

    exit_code = ExitCode.NOT_ENTITLED
    summary = "not entitled"


class PlatformNotSupportedError(EntrypointError):
    """RegisterUsage answered PlatformNotSupportedException (not ECS, EKS or Fargate)."""

    exit_code = ExitCode.PLATFORM_NOT_SUPPORTED
    summary = "platform not supported"


class ServiceError(EntrypointError):
    """The service refused the call with an error this version does not know how to handle."""

    exit_code = ExitCode.SERVICE_ERROR
    summary = "service error"


class UsageRejectedError(ServiceError):
    """MeterUsage refused a record for good: another quantity was already recorded for that
    dimension and hour (DuplicateRequestException, IdempotencyConflictException), or its timestamp
    is out of bounds (TimestampOutOfBoundsException). Retrying the same record cannot succeed.
    ``code`` is the service's error code."""

    summary = "usage rejected"

    def __init__(self, reason: str, *, code: str, remedy: str | None = None) -> None:
        super().__init__(reason, remedy=remedy)
        self.code = code


class RetriesExhaustedError(EntrypointError):
    """Throttling, server faults or the network outlasted the retry deadline."""

    exit_code = ExitCode.RETRIES_EXHAUSTED
    summary = "retries exhausted"


class BootstrapInterrupted(EntrypointError):  # noqa: N818 - an event, like KeyboardInterrupt
    """SIGINT or SIGTERM arrived before the workload was started."""

    summary = "interrupted"

    def __init__(self, signum: int) -> None:
        self.signum = signum
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(
            f"received {name} before the workload started",
            remedy="nothing was started",
        )
        try:
            self.exit_code = ExitCode(128 + signum)
        except ValueError:
            self.exit_code = ExitCode.INTERNAL


class WorkloadExecError(EntrypointError):
    """The verified bootstrap could not exec the workload (not found or not executable)."""

    summary = "cannot start workload"

    def __init__(self, reason: str, *, not_found: bool, remedy: str | None = None) -> None:
        super().__init__(reason, remedy=remedy)
        self.exit_code = (
            ExitCode.WORKLOAD_NOT_FOUND if not_found else ExitCode.WORKLOAD_NOT_EXECUTABLE
        )
