"""What every botocore client of the entrypoint shares: credentials fetched before the first call,
and botocore's own failures classified.

`entrypoint.metering` (Metering) and `entrypoint.license.client` (License Manager) create their
clients differently (endpoint, CA bundle, answer cap) but resolve credentials and read botocore's
exceptions the same way, here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .answers import IDENTITY_FILE_REMEDY, ROLE_REMEDY, Transient, classify_sts_error
from .credentials import CredentialSource, announce_credentials
from .errors import ConfigurationError, EntrypointError, one_line

if TYPE_CHECKING:
    from botocore.session import Session

__all__ = ["classify_botocore", "raised_in", "resolve_credentials"]


def resolve_credentials(
    session: Session,
    *,
    role_remedy: str = ROLE_REMEDY,
    known: CredentialSource | None = None,
) -> CredentialSource:
    """Resolve, and fetch, the task's credentials before the first call; name their source.

    botocore defers IRSA's STS call to the first signature; fetching here classifies its
    failures as credential failures. The source is logged once: not again when ``known`` (the
    source an earlier call returned) is given.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                "no AWS credentials found (no task role, no IRSA, no keys)", remedy=role_remedy
            )
        credentials.get_frozen_credentials()
    except EntrypointError:
        raise
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        raise classify_sts_error(
            str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))
        ) from None
    except BotoCoreError as exc:
        raise classify_botocore(exc, role_remedy) from None
    except OSError as exc:  # a token file botocore could not read
        raise ConfigurationError(
            f"cannot read {exc.filename or 'a credentials file'}: "
            f"{exc.strerror or one_line(exc, 120)}",
            remedy=IDENTITY_FILE_REMEDY,
        ) from None
    except ValueError as exc:  # e.g. a container credentials URI botocore will not use
        raise ConfigurationError(
            f"the credentials configuration was refused: {one_line(exc, 200)}",
            remedy="AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback, or the ECS "
            "agent's address",
        ) from None
    if known is not None:
        return known
    return announce_credentials(getattr(credentials, "method", None), os.environ)


def raised_in(exc: BaseException, module: str) -> bool:
    """Whether any frame of ``exc``'s traceback ran code of ``module``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


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
