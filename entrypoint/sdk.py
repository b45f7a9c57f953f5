"""What every botocore client of the entrypoint shares: credentials fetched before the first call,
and botocore's own failures classified.

`entrypoint.metering` (Metering) and `entrypoint.license.client` (License Manager) create their
clients differently (endpoint, CA bundle, answer cap), from the same bounded session
(`entrypoint.awssession`), and resolve credentials and read botocore's exceptions the same way,
here: every way fetching the task's credentials can fail is a transient fault (retried) or a
final error with one line of diagnosis (`classify_credential_failure`), never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .answers import IDENTITY_FILE_REMEDY, ROLE_REMEDY, Transient, classify_sts_error
from .capped import RefusedAnswer
from .credentials import CredentialSource, announce_credentials
from .errors import ConfigurationError, EntrypointError, one_line

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from botocore.session import Session

    from .capped import BoundedSession

__all__ = [
    "classify_botocore",
    "classify_credential_failure",
    "error_parts",
    "raised_in",
    "resolve_credentials",
]

_CONTAINER_REMEDY = (
    "ECS (and the EKS Pod Identity agent) set AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / "
    "AWS_CONTAINER_CREDENTIALS_FULL_URI and the authorization token for the task itself: do not "
    "set or change them in the task definition"
)


def resolve_credentials(
    session: Session,
    *,
    role_remedy: str = ROLE_REMEDY,
    known: CredentialSource | None = None,
    container_fetch: BoundedSession | None = None,
    environ: Mapping[str, str] | None = None,
) -> CredentialSource:
    """Resolve, and fetch, the task's credentials before the first call; name their source.

    botocore defers IRSA's STS call to the first signature; fetching here classifies its
    failures as credential failures (`classify_credential_failure`; ``container_fetch`` is the
    container credentials fetcher's bounded session, whose last answer tells a refusal from a
    fault). The source is logged once: not again when ``known`` (the source an earlier call
    returned) is given. Raises `Transient` (retry) or an `EntrypointError`.
    """
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except Exception as exc:  # noqa: BLE001 - every failure is classified, or is a bug
        raise classify_credential_failure(exc, container_fetch, role_remedy) from None
    if credentials is None or frozen is None:
        raise ConfigurationError(
            "no AWS credentials found (no task role, no IRSA, no keys)", remedy=role_remedy
        )
    # botocore takes the members of a credentials answer as they come; one that is not a
    # string would fail later, inside the signer.
    keys = (frozen.access_key, frozen.secret_key)
    if not all(isinstance(key, str) and key for key in keys) or not isinstance(
        frozen.token, str | None
    ):
        raise Transient(
            "CredentialAnswerUnusable",
            "the credentials answer's access key, secret key or token is not a string",
        )
    if known is not None:
        return known
    return announce_credentials(
        getattr(credentials, "method", None), os.environ if environ is None else environ
    )


def error_parts(exc: ClientError) -> tuple[str, int, str]:
    """A botocore ``ClientError``'s code, HTTP status (0 when absent) and message, as text and
    an integer whatever types the answer carried."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))


def raised_in(exc: BaseException, package: str) -> bool:
    """Whether any frame of ``exc``'s traceback ran code of ``package`` (a module or a package
    prefix such as ``botocore.``)."""
    tb = exc.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if name == package or (package.endswith(".") and name.startswith(package)):
            return True
        tb = tb.tb_next
    return False


# What botocore lets escape when an answer it fetched credentials with is not what it expects:
# a member missing or of another type (KeyError: 'Token'), JSON nested past the recursion limit,
# bytes that are not UTF-8 (botocore decodes the container credentials answer itself).
_ANSWER_FAULTS = (KeyError, TypeError, AttributeError, IndexError, RecursionError, UnicodeError)


def classify_credential_failure(
    exc: Exception,
    container_fetch: BoundedSession | None = None,
    role_remedy: str = ROLE_REMEDY,
) -> EntrypointError | Transient:
    """What a failure to fetch the task's credentials means for the bootstrap; an exception it
    cannot name is raised again (a bug is a bug, exit 70)."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    text = one_line(exc, 200)
    if isinstance(exc, RefusedAnswer):
        source = f" from {exc.host}" if exc.host else ""
        return Transient("CredentialAnswerRefused", f"the credentials answer{source}: {text}")
    if isinstance(exc, bx.ClientError):
        return classify_sts_error(*error_parts(exc))
    if isinstance(exc, ResponseParserError):  # not a BotoCoreError: lives in botocore.parsers
        return Transient("CredentialAnswerUnparsable", f"STS's answer could not be parsed: {text}")
    if isinstance(exc, bx.CredentialRetrievalError) and container_fetch is not None:
        refused = container_fetch.last_status
        if refused is not None and 400 <= refused < 500 and refused != 429:
            # The ECS agent answers 400 for an id it never issued ("CredentialsV2Request:
            # Credentials not found") and 503 while it reconciles its state after a restart
            # (amazon-ecs-agent, ecs-agent/tmds/handlers/v1/credentials_handler.go): a 4xx is
            # the request's fault, and asking again cannot help.
            body = one_line(container_fetch.last_body.decode("utf-8", "replace"), 200)
            return ConfigurationError(
                f"the container credentials endpoint refused the request with HTTP {refused}: "
                f"{body}",
                remedy=_CONTAINER_REMEDY,
            )
    if isinstance(exc, bx.BotoCoreError):
        return classify_botocore(exc, role_remedy)
    if isinstance(exc, OSError):  # a token file botocore could not read
        return ConfigurationError(
            f"cannot read {exc.filename or 'a credentials file'}: "
            f"{exc.strerror or one_line(exc, 120)}",
            remedy=IDENTITY_FILE_REMEDY,
        )
    if isinstance(exc, _ANSWER_FAULTS) and raised_in(exc, "botocore."):
        return Transient(
            "CredentialAnswerUnusable",
            f"the credentials answer is not what botocore expects ({type(exc).__name__}: {text})",
        )
    if isinstance(exc, ValueError) and raised_in(exc, "botocore."):
        # botocore refuses a container credentials URI it will not use with ValueError.
        return ConfigurationError(
            f"the credentials configuration was refused: {text}",
            remedy="AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback, or the ECS "
            "agent's address",
        )
    raise exc


def classify_botocore(
    exc: Exception,
    role_remedy: str = ROLE_REMEDY,
    *,
    service: str = "Metering",
    tls_remedy: str = "check AWS_CA_BUNDLE, any TLS-inspecting proxy, and this host's clock",
) -> EntrypointError | Transient:
    """Map botocore's own (non-HTTP-status) failures."""
    from botocore import exceptions as bx

    text = one_line(exc, 200)
    if isinstance(exc, bx.SSLError):
        return ConfigurationError(
            f"TLS to the {service} endpoint failed: {text}", remedy=tls_remedy
        )
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return ConfigurationError(f"no usable AWS credentials ({text})", remedy=role_remedy)
    if isinstance(exc, bx.CredentialRetrievalError):
        # The container credentials endpoint or STS is not ready yet: common in the first
        # seconds of a task. Retried inside the deadline.
        return Transient("CredentialRetrievalError", text)
    if isinstance(exc, bx.NoRegionError | bx.InvalidRegionError):
        return ConfigurationError(
            f"invalid AWS Region ({text})", remedy="set AWS_REGION to the task's Region"
        )
    if isinstance(exc, bx.HTTPClientError | bx.ConnectionError):
        return Transient(type(exc).__name__, text)
    if isinstance(exc, bx.ProfileNotFound | bx.ConfigNotFound | bx.InvalidConfigError):
        return ConfigurationError(
            f"the AWS configuration is invalid ({text})",
            remedy="check AWS_PROFILE, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE",
        )
    return ConfigurationError(
        f"the AWS SDK refused the call ({type(exc).__name__}: {text})",
        remedy="check the AWS configuration of the task",
    )
