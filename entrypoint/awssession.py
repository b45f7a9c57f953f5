"""The botocore session a start makes its clients from: every setting checked, every answer bounded.

`AwsSession` is what every botocore client of the bootstrap is created from (Metering's,
`entrypoint.metering`, and License Manager's, `entrypoint.license.client`; any other service
client is made the same way, with `AwsSession.create_client`):

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

`AwsSession.resolve_credentials` fetches the task's credentials before the first call through
those fetchers and turns every way that can fail into a transient fault (retried) or a final error
with one line of diagnosis (`entrypoint.sdk.classify_credential_failure`); so does
`AwsSession.refreshes_classified` around a call, for botocore's refresh while it signs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._version import __version__
from .answers import ROLE_REMEDY, Transient
from .capped import BoundedSession, CappedSend
from .credentials import CredentialSource, StaticCredentials
from .envfiles import check_named_files
from .environment import check_aws_environment
from .errors import EntrypointError
from .sdk import classify_credential_failure, raised_in, resolve_credentials

if TYPE_CHECKING:
    from botocore.session import Session

__all__ = ["AwsSession", "ClientCache", "attempt_timeouts", "bounded_sender", "client_options"]

# The smallest timeout an attempt gets near the deadline.
_MIN_ATTEMPT_SECONDS = 0.05
# Protocols whose answers botocore parses as XML (query: STS; rest-xml; ec2).
_XML_PROTOCOLS = frozenset({"query", "rest-xml", "ec2"})
_HOOK_ID = "marketplace-entrypoint-bounded-client"


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
                _one_attempt_config(connect_timeout=connect_timeout, read_timeout=read_timeout)
            )
        self.botocore.register("creating-client-class", _add_bounded_base, unique_id=_HOOK_ID)
        self.container_fetch: BoundedSession | None = None
        self.imds_fetch: BoundedSession | None = None
        self.credential_source: CredentialSource | None = None
        # Set when fetching credentials failed: botocore caches an STS answer before it reads
        # it, so a malformed one would fail every retry from this session without asking STS
        # again. Its owner then makes the next attempt from a new session.
        self.spent = False

    def create_client(
        self,
        service: str,
        *,
        max_bytes: int | None = None,
        **kwargs: Any,  # noqa: ANN401 - botocore's create_client arguments
    ) -> Any:  # noqa: ANN401 - a botocore client
        """``botocore.session.Session.create_client``; the client's answers are bounded, at
        ``max_bytes`` if given (default `MAX_ANSWER_BYTES`)."""
        client = self.botocore.create_client(service, **kwargs)
        if max_bytes is not None:
            bounded_sender(client).max_bytes = max_bytes
        return client

    @contextlib.contextmanager
    def refreshes_classified(self) -> Iterator[None]:
        """Around a client call: botocore refreshes the task's credentials while it signs (IRSA's
        STS call, the container credentials endpoint, when they are about to expire), and a
        failure there is classified as `resolve_credentials` classifies it, not as an answer of
        the service called, and the session is `spent`. Raises `Transient` or an
        `EntrypointError`; anything else passes."""
        try:
            yield
        except (Transient, EntrypointError):
            raise
        except Exception as exc:
            if raised_in(exc, "botocore.credentials"):
                self.spent = True
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
        try:
            # Builds botocore's default chain, reading its configuration: its errors are the
            # configuration's (an unknown profile, a bad IMDS endpoint mode).
            resolver = self.botocore.get_component("credential_provider")
        except Exception as exc:  # noqa: BLE001 - classified, or raised again as the bug it is
            raise classify_credential_failure(exc) from None
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

    def resolve_credentials(self, role_remedy: str = ROLE_REMEDY) -> CredentialSource:
        """Fetch the task's credentials through the bounded fetchers (`sdk.resolve_credentials`);
        name their source once in the log. Raises `Transient` (retry) or an `EntrypointError`."""
        try:
            self._bound_fetchers()
            self.credential_source = resolve_credentials(
                self.botocore,
                role_remedy=role_remedy,
                known=self.credential_source,
                container_fetch=self.container_fetch,
                environ=self.environ,
            )
        except BaseException:
            self.spent = True
            raise
        return self.credential_source


def _one_attempt_config(**options: Any) -> Any:  # noqa: ANN401 - a botocore Config
    """botocore's ``Config`` for the bootstrap: one attempt per call (retries and the deadline
    are `entrypoint.retry`'s), the project's user agent, and ``options``."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra=f"marketplace-entrypoint/{__version__}",
        **options,
    )


def attempt_timeouts(connect: float, read: float, timeout: float | None) -> tuple[float, float]:
    """The connect and read timeouts of one attempt: the client's, shortened near the deadline
    (``timeout``: the seconds left, None: no limit), so that the whole bootstrap ends within its
    deadline (plus scheduling slack), not a timeout later."""
    if timeout is None:
        return connect, read
    shortest = max(timeout, _MIN_ATTEMPT_SECONDS)
    return min(connect, shortest), min(read, shortest)


def client_options(
    region: str,
    connect: float,
    read: float,
    credentials: StaticCredentials | None,
    **config: Any,  # noqa: ANN401 - further botocore Config options
) -> dict[str, Any]:
    """``create_client``'s arguments for one of the bootstrap's clients: the Region, these
    timeouts, one attempt per call, and ``credentials`` when explicit (None: botocore's chain)."""
    options: dict[str, Any] = {
        "region_name": region,
        "config": _one_attempt_config(
            region_name=region, connect_timeout=connect, read_timeout=read, **config
        ),
    }
    if credentials is not None:
        options["aws_access_key_id"] = credentials.access_key_id
        options["aws_secret_access_key"] = credentials.secret_access_key
        options["aws_session_token"] = credentials.session_token
    return options


class CreateClient(Protocol):
    """Makes one client from the session, with these timeouts (``first``: the session's first
    client): the client and its CappedSend."""

    def __call__(
        self, aws: AwsSession, connect: float, read: float, *, first: bool
    ) -> tuple[Any, CappedSend]: ...


class ClientCache:
    """The clients of one service for one caller: one per (connect, read) timeout pair, all from
    one `AwsSession`. Once that session is `AwsSession.spent` (fetching credentials failed), the
    next `get` starts from a new session. ``explicit_credentials``: the caller passes keys of its
    own, so botocore has nothing to refresh while it signs."""

    def __init__(
        self,
        create: CreateClient,
        *,
        connect_timeout: float,
        read_timeout: float,
        session: Session | None,
        explicit_credentials: bool,
    ) -> None:
        self._create = create
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session = session
        self._explicit = explicit_credentials
        self._clients: dict[tuple[float, float], tuple[Any, CappedSend]] = {}
        self._lock = threading.Lock()
        self.aws: AwsSession | None = None

    def get(self, connect: float, read: float) -> tuple[Any, CappedSend]:
        """The client for these timeouts (rounded to 10 ms), created on first use."""
        key = (round(connect, 2), round(read, 2))
        with self._lock:
            if self.aws is not None and self.aws.spent:
                self.aws = None
                self._clients.clear()
            client = self._clients.get(key)
            if client is None:
                if self.aws is None:
                    # Checks the environment and the files it names (exit 78 naming the
                    # variable), and bounds every answer of every client and credential fetcher.
                    self.aws = AwsSession(
                        connect_timeout=self._connect_timeout,
                        read_timeout=self._read_timeout,
                        session=self._session,
                    )
                client = self._create(self.aws, *key, first=not self._clients)
                self._clients[key] = client
            return client

    def refreshes_classified(self) -> contextlib.AbstractContextManager[None]:
        """Around a call: a credential refresh that fails mid-call, classified as a credential
        failure (`AwsSession.refreshes_classified`); nothing when botocore refreshes nothing."""
        if self.aws is None or self._explicit:
            return contextlib.nullcontext()
        return self.aws.refreshes_classified()
