"""The botocore session a start makes its clients from: every setting checked, every answer bounded.

`AwsSession` is what every botocore client of the bootstrap is created from (Metering today; any
other service client is made the same way, with `AwsSession.create_client`):

1. The AWS settings botocore reads from the environment are checked before botocore reads them
   (`entrypoint.environment`), and so are the files they name (`entrypoint.envfiles`): exit 78 at
   once, naming the variable.
2. Every client the session creates reads its answers through `capped.CappedSend` (bounded in size
   and time, XML with a DTD refused). It is set up with botocore's ``creating-client-class``
   event, the documented way to add a base class to a client, so the clients botocore creates
   for itself get it too: STS for IRSA (AssumeRoleWithWebIdentity) and for assume-role profiles.
3. botocore's credential fetchers for the container credentials endpoint and IMDS have an HTTP
   session of their own, which no client event reaches: each is put behind a
   `capped.BoundedSession`.
4. Every client makes one attempt per call and uses the bootstrap's timeouts (the session's
   default client configuration, which botocore merges into every client it creates): retries
   and the deadline belong to `entrypoint.retry`.

`AwsSession.resolve_credentials` fetches the task's credentials before the first call and turns
every way that can fail into a transient fault (retried) or a final error with one line of
diagnosis (`classify_credential_failure`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .answers import IDENTITY_FILE_REMEDY, ROLE_REMEDY, Transient, classify_sts_error
from .capped import BoundedSession, CappedSend, RefusedAnswer
from .credentials import CredentialSource, announce_credentials
from .envfiles import check_named_files
from .environment import check_aws_environment
from .errors import ConfigurationError, EntrypointError, one_line

if TYPE_CHECKING:
    from botocore.session import Session

__all__ = ["AwsSession", "bounded_sender", "classify_botocore", "raised_in"]

# Protocols whose answers botocore parses as XML (query: STS; rest-xml; ec2).
_XML_PROTOCOLS = frozenset({"query", "rest-xml", "ec2"})
_HOOK_ID = "marketplace-entrypoint-bounded-client"
_CONTAINER_REMEDY = (
    "ECS (and the EKS Pod Identity agent) set AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / "
    "AWS_CONTAINER_CREDENTIALS_FULL_URI and the authorization token for the task itself: do not "
    "set or change them in the task definition"
)


class _BoundedClient:
    """The base class every client of the session gets: its answers go through `CappedSend`,
    over its own HTTP session (proxies, CA bundle and timeouts stay what botocore resolved)."""

    capped_send: CappedSend

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - botocore's arguments
        super().__init__(*args, **kwargs)
        client: Any = self
        config = client.meta.config
        self.capped_send = CappedSend(
            client._endpoint.http_session,
            connect_timeout=float(config.connect_timeout),
            read_timeout=float(config.read_timeout),
            refuse_dtd=client.meta.service_model.protocol in _XML_PROTOCOLS,
        )
        # The client's event emitter is its own copy of the session's (botocore/args.py).
        client.meta.events.register("before-send", self.capped_send)


def _add_bounded_base(**kwargs: Any) -> None:  # noqa: ANN401 - botocore's event arguments
    """``creating-client-class``: botocore builds the class from ``base_classes``."""
    base_classes: list[type] = kwargs["base_classes"]
    if _BoundedClient not in base_classes:
        base_classes.insert(0, _BoundedClient)


def bounded_sender(client: Any) -> CappedSend:  # noqa: ANN401 - a botocore client
    """The `CappedSend` of a client made by an `AwsSession` (for the status of its last answer)."""
    sender = getattr(client, "capped_send", None)
    if not isinstance(sender, CappedSend):
        raise TypeError(f"{type(client).__name__} was not created by an AwsSession")
    return sender


class AwsSession:
    """A botocore session for the bootstrap (see the module's docstring for what it adds).

    ``session`` wraps an existing botocore session (tests share one): its clients are bounded,
    but its default configuration and credential fetchers are left as they are.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        environ: Mapping[str, str] | None = None,
        session: Session | None = None,
    ) -> None:
        import botocore.session
        from botocore.config import Config

        self.environ = os.environ if environ is None else environ
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # What botocore will read from the environment, checked first (exit 78 naming it).
        check_aws_environment(self.environ)
        check_named_files(self.environ)
        self._owned = session is None
        self.botocore: Session = session if session is not None else botocore.session.get_session()
        if self._owned:
            self.botocore.set_default_client_config(
                Config(
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    user_agent_extra=f"marketplace-entrypoint/{__version__}",
                )
            )
        self.botocore.register("creating-client-class", _add_bounded_base, unique_id=_HOOK_ID)
        self.container_fetch: BoundedSession | None = None
        self.imds_fetch: BoundedSession | None = None
        self.credential_source: CredentialSource | None = None

    def create_client(self, service: str, **kwargs: Any) -> Any:  # noqa: ANN401 - botocore's
        """``botocore.session.Session.create_client``; the client's answers are bounded."""
        return self.botocore.create_client(service, **kwargs)

    @contextlib.contextmanager
    def refreshes_classified(self) -> Iterator[None]:
        """Around a client call: botocore refreshes the task's credentials while it signs (IRSA's
        STS call, the container credentials endpoint, when they are about to expire), and a
        failure there is classified as `resolve_credentials` classifies it, not as an answer of
        the service called. Raises `Transient` or an `EntrypointError`; anything else passes."""
        try:
            yield
        except (Transient, EntrypointError):
            raise
        except Exception as exc:
            if raised_in(exc, "botocore.credentials"):
                raise classify_credential_failure(exc, self.container_fetch) from None
            raise

    def _bound_fetchers(self) -> None:
        """Put botocore's container credentials and IMDS fetchers behind `BoundedSession`.

        The providers are botocore's own (the default chain, and the same objects the
        assume-role provider sources from); only the HTTP session they send with is replaced.
        A botocore whose providers no longer look like this is refused, not run unbounded.
        """
        if not self._owned or self.container_fetch is not None:
            return
        resolver = self.botocore.get_component("credential_provider")
        try:
            container = resolver.get_provider("container-role")._fetcher
            instance = resolver.get_provider("iam-role")._role_fetcher
            container_session, imds_session = container._session, instance._session
        except Exception as exc:  # noqa: BLE001 - any change in botocore's internals
            raise RuntimeError(
                "this botocore's credential fetchers cannot be bounded "
                f"({type(exc).__name__}: {exc}); install the botocore version the lock pins"
            ) from None
        self.container_fetch = BoundedSession(
            container_session, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
        )
        self.imds_fetch = BoundedSession(
            imds_session, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
        )
        container._session = self.container_fetch
        instance._session = self.imds_fetch

    def resolve_credentials(self) -> CredentialSource:
        """Resolve, and fetch, the task's credentials before the first call; name the source once
        in the log.

        botocore defers IRSA's STS call to the first signature; fetching here classifies its
        failures as credential failures. Raises `Transient` (retry) or an `EntrypointError`.
        """
        try:
            self._bound_fetchers()
            credentials = self.botocore.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except Exception as exc:  # noqa: BLE001 - every failure is classified, or is a bug
            raise classify_credential_failure(exc, self.container_fetch) from None
        if credentials is None or frozen is None:
            raise ConfigurationError(
                "no AWS credentials found (no task role, no IRSA, no keys)", remedy=ROLE_REMEDY
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
        if self.credential_source is None:
            self.credential_source = announce_credentials(
                getattr(credentials, "method", None), self.environ
            )
        return self.credential_source


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
    exc: Exception, container_fetch: BoundedSession | None = None
) -> EntrypointError | Transient:
    """What a failure to fetch the task's credentials means for the bootstrap."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    text = one_line(exc, 200)
    if isinstance(exc, RefusedAnswer):
        source = f" from {exc.host}" if exc.host else ""
        return Transient("CredentialAnswerRefused", f"the credentials answer{source}: {text}")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return classify_sts_error(
            str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))
        )
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
        return classify_botocore(exc)
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
    exc: Exception, role_remedy: str = ROLE_REMEDY
) -> EntrypointError | Transient:
    """Map botocore's own (non-HTTP-status) failures."""
    from botocore import exceptions as bx

    text = one_line(exc, 200)
    if isinstance(exc, bx.SSLError):
        return ConfigurationError(
            f"TLS to the Metering endpoint failed: {text}",
            remedy="check AWS_CA_BUNDLE, any TLS-inspecting proxy, and this host's clock",
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
