"""License Manager calls through botocore: one attempt each, from a pinned endpoint over pinned TLS.

A Marketplace license's answer carries no signature a seller can check (no public key exists for
its ``SignedToken``): TLS to AWS is its only protection. So, unless the image's ENTRYPOINT allows
it (``--allow-license-endpoint-override``, a flag, never a variable), nothing in the task's
environment may choose where the call goes or whom TLS trusts:

* an endpoint override (``AWS_ENDPOINT_URL_LICENSE_MANAGER``, ``AWS_ENDPOINT_URL``, or an
  ``endpoint_url`` in the AWS config file) is refused, exit 78 naming it, before any call; the
  client is also created with botocore's ``ignore_configured_endpoint_urls``;
* the CA bundle is the image's own (botocore's default, ``get_cert_path(True)``), passed to
  botocore explicitly as ``verify=``, so ``AWS_CA_BUNDLE`` or a config file's ``ca_bundle`` (and
  ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, which botocore never reads) cannot add a buyer's
  CA; a TLS-inspecting proxy then fails closed.

Everything else is botocore's, as for Metering (`entrypoint.metering`): the credential chain,
SigV4, endpoint rules, the wire protocol, retries off (they are `entrypoint.retry`'s), and the
bound on every answer and credential fetch (`entrypoint.awssession.AwsSession`, here at
`MAX_LICENSE_ANSWER_BYTES`).
What each answer means is `entrypoint.license.answers`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from entrypoint.answers import Transient
from entrypoint.awssession import (
    AwsSession,
    ClientCache,
    attempt_timeouts,
    bounded_sender,
    client_options,
)
from entrypoint.capped import CappedSend, OversizedAnswer
from entrypoint.credentials import CredentialSource, StaticCredentials
from entrypoint.errors import (
    ConfigurationError,
    EntrypointError,
    LicenseAnswerError,
    ServiceError,
    one_line,
)
from entrypoint.logs import event
from entrypoint.sdk import classify_botocore, error_parts, raised_in

from .answers import (
    LICENSE_ROLE_REMEDY,
    MAX_LICENSE_ANSWER_BYTES,
    CheckoutAnswer,
    LicenseStatus,
    classify_license_error,
    parse_checkout,
    parse_expiration,
    parse_license,
)
from .contract import ContractProduct

if TYPE_CHECKING:
    from botocore.session import Session

__all__ = [
    "ENDPOINT_OVERRIDE_VARIABLES",
    "BotocoreLicenseClient",
    "LicenseClient",
    "create_license_client",
]

T = TypeVar("T")

SERVICE = "license-manager"
ENDPOINT_OVERRIDE_VARIABLES = ("AWS_ENDPOINT_URL_LICENSE_MANAGER", "AWS_ENDPOINT_URL")
# Where a CA could come from in the environment: botocore's own setting, and the variables other
# HTTP stacks read (botocore does not; the tests prove none of them reaches a pinned call).
CA_VARIABLES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
FLAG = "--allow-license-endpoint-override"
_TLS_REMEDY = (
    "License Manager answers are trusted only over TLS verified with the image's CA bundle: a "
    "TLS-inspecting proxy cannot be used for them (AWS_CA_BUNDLE is not honoured); check this "
    "host's clock"
)


class LicenseClient(Protocol):
    """One License Manager attempt per call. ``timeout`` caps it in seconds (None: default)."""

    def checkout(
        self, contract: ContractProduct, *, client_token: str, timeout: float | None = None
    ) -> CheckoutAnswer: ...

    def check_in(self, consumption_token: str, *, timeout: float | None = None) -> None: ...

    def extend(self, consumption_token: str, *, timeout: float | None = None) -> datetime: ...

    def get_license(self, license_arn: str, *, timeout: float | None = None) -> LicenseStatus: ...

    def list_received(
        self, contract: ContractProduct, *, timeout: float | None = None
    ) -> list[LicenseStatus]: ...


class BotocoreLicenseClient:
    """License Manager through botocore, one attempt per call, endpoint and CA pinned.

    ``allow_overrides`` honours the environment's endpoint and CA settings (the ENTRYPOINT flag).
    ``endpoint_url`` and ``ca_bundle`` are the caller's own choice (in-process code and tests),
    always honoured. ``credentials`` and ``session`` as for `BotocoreMeteringClient`.
    """

    def __init__(
        self,
        *,
        region: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        allow_overrides: bool = False,
        endpoint_url: str | None = None,
        ca_bundle: str | None = None,
        credentials: StaticCredentials | None = None,
        session: Session | None = None,
    ) -> None:
        self.region = region
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.allow_overrides = allow_overrides
        self.endpoint_url = endpoint_url
        self.ca_bundle = ca_bundle
        self._credentials = credentials
        self._clients = ClientCache(
            self._create,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            explicit_credentials=credentials is not None,
        )
        self.credential_source: CredentialSource | None = None
        self.verify: str | bool | None = None  # what TLS trusts: a CA bundle path, or botocore's

    # -- client creation ------------------------------------------------------------------------
    def _client(self, timeout: float | None) -> tuple[Any, CappedSend]:
        # Near the deadline, shorter attempts (as for RegisterUsage).
        return self._clients.get(
            *attempt_timeouts(self.connect_timeout, self.read_timeout, timeout)
        )

    def _kwargs(self, connect: float, read: float, *, pinned: bool) -> dict[str, Any]:
        return client_options(
            self.region,
            connect,
            read,
            self._credentials,
            # botocore >= 1.31 (botocore-stubs do not list it yet).
            ignore_configured_endpoint_urls=True if pinned else None,
        )

    def _create(
        self, aws: AwsSession, connect: float, read: float, *, first: bool
    ) -> tuple[Any, CappedSend]:
        """A client from ``aws``; the first of a session also checks what the session is
        configured with: the CA settings it ignores (a warning) and any configured endpoint."""
        from botocore.exceptions import BotoCoreError
        from botocore.httpsession import get_cert_path

        session = aws.botocore
        pinned = not self.allow_overrides
        kwargs = self._kwargs(connect, read, pinned=pinned)
        if self.endpoint_url is not None:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.ca_bundle is not None:
            kwargs["verify"] = self.ca_bundle
        elif pinned:
            # The image's bundle (certifi's or botocore's own), never the environment's.
            kwargs["verify"] = get_cert_path(verify=True)
            if first:
                self._warn_ignored_ca(session)
        self.verify = kwargs.get("verify")
        try:
            # Its answers go through the session's CappedSend, at License Manager's own cap.
            client: Any = aws.create_client(SERVICE, max_bytes=MAX_LICENSE_ANSWER_BYTES, **kwargs)
            if pinned and self.endpoint_url is None and first:
                self._refuse_configured_endpoint(session, str(client.meta.endpoint_url))
        except BotoCoreError as exc:
            raise self._classify_sdk(exc) from None
        except ValueError as exc:  # botocore refuses malformed endpoint URLs with ValueError
            raise ConfigurationError(
                f"cannot create the License Manager client: {one_line(exc, 200)}",
                remedy="check AWS_ENDPOINT_URL_LICENSE_MANAGER and the AWS config file",
            ) from None
        if self._credentials is None:
            self.credential_source = aws.resolve_credentials(LICENSE_ROLE_REMEDY)
        return client, bounded_sender(client)

    def _refuse_configured_endpoint(self, session: Session, pinned_url: str) -> None:
        """Refuse, before any call, an endpoint the environment or config file configures."""
        for name in ENDPOINT_OVERRIDE_VARIABLES:
            value = os.environ.get(name, "").strip()
            if value:
                raise _override_refused(name, value)
        # What botocore would use with configured endpoints honoured: an ``endpoint_url`` in the
        # AWS config file (a profile's, or its services section's) shows as another URL.
        probe = session.create_client(SERVICE, **self._kwargs(1.0, 1.0, pinned=False))
        if str(probe.meta.endpoint_url) != pinned_url:
            raise _override_refused("the AWS config file's endpoint_url", probe.meta.endpoint_url)

    def _warn_ignored_ca(self, session: Session) -> None:
        named = [name for name in CA_VARIABLES if os.environ.get(name, "").strip()]
        if session.get_config_variable("ca_bundle") and "AWS_CA_BUNDLE" not in named:
            named.append("the AWS config file's ca_bundle")
        if named:
            event(
                logging.WARNING,
                f"{', '.join(named)} ignored for License Manager: its answers are trusted only "
                f"over TLS verified with the image's CA bundle ({FLAG} in ENTRYPOINT allows "
                "otherwise)",
                event="license_ca_ignored",
                ignored=named,
            )

    def prepare(self) -> str:
        """Create the client (refusing overrides, resolving credentials) without calling the API;
        return the endpoint URL botocore will use. For the ``check`` command."""
        client, _ = self._client(None)
        return str(client.meta.endpoint_url)

    # -- the calls ------------------------------------------------------------------------------
    def _call(
        self,
        operation: str,
        call: Callable[[Any], Mapping[str, Any]],
        timeout: float | None,
        *,
        answer_bound: bool,
    ) -> Mapping[str, Any]:
        """One attempt of ``operation``; ``answer_bound``: a bad 2xx answer fails closed (65)
        instead of being retried."""
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        client, sender = self._client(timeout)
        try:
            # Credentials botocore refreshes while it signs: their failures are classified so.
            with self._clients.refreshes_classified():
                return call(client)
        except (Transient, EntrypointError):
            raise
        except ClientError as exc:
            if exc.operation_name != operation:  # IRSA credentials refreshed during the call
                from entrypoint.answers import classify_sts_error

                raise classify_sts_error(*error_parts(exc)) from None
            location = exc.response.get("Location")
            raise classify_license_error(
                operation,
                *error_parts(exc),
                location=location if isinstance(location, str) else None,
            ) from None
        except OversizedAnswer as exc:
            if exc.status < 300 and answer_bound:
                raise LicenseAnswerError(
                    f"the {operation} answer could not be read: {exc}",
                    remedy="the workload was not started; check what answers at the License "
                    "Manager endpoint",
                ) from None
            raise Transient("OversizedAnswer", str(exc)) from None
        except BotoCoreError as exc:
            raise self._classify_sdk(exc) from None
        except Exception as exc:  # noqa: BLE001 - fail closed on anything the SDK did not classify
            if isinstance(exc, ResponseParserError) or raised_in(exc, "botocore.parsers"):
                last = sender.last_status()
                if (last is None or last < 300) and answer_bound:
                    raise LicenseAnswerError(
                        f"the {operation} answer could not be parsed ({type(exc).__name__})",
                        remedy="the workload was not started",
                    ) from None
                raise classify_license_error(
                    operation, "", last or 0, f"unparsable answer ({type(exc).__name__})"
                ) from None
            raise ServiceError(
                f"{operation} failed unexpectedly ({type(exc).__name__}: {one_line(exc, 200)})",
                remedy="the workload was not started; report this if it persists",
            ) from None

    def _classify_sdk(self, exc: Exception) -> EntrypointError | Transient:
        return classify_botocore(
            exc, LICENSE_ROLE_REMEDY, service="License Manager", tls_remedy=_TLS_REMEDY
        )

    def checkout(
        self, contract: ContractProduct, *, client_token: str, timeout: float | None = None
    ) -> CheckoutAnswer:
        """CheckoutLicense with the Marketplace issuer's fingerprint, the image's product ID and
        entitlements, and ``client_token`` (the same token for every retry of one checkout)."""
        response = self._call(
            "CheckoutLicense",
            lambda client: client.checkout_license(
                ProductSKU=contract.product_id,
                CheckoutType=contract.checkout_type,
                KeyFingerprint=contract.key_fingerprint,
                Entitlements=contract.requests(),
                ClientToken=client_token,
            ),
            timeout,
            answer_bound=True,
        )
        return parse_checkout(response)

    def check_in(self, consumption_token: str, *, timeout: float | None = None) -> None:
        self._call(
            "CheckInLicense",
            lambda client: client.check_in_license(LicenseConsumptionToken=consumption_token),
            timeout,
            answer_bound=False,
        )

    def extend(self, consumption_token: str, *, timeout: float | None = None) -> datetime:
        response = self._call(
            "ExtendLicenseConsumption",
            lambda client: client.extend_license_consumption(
                LicenseConsumptionToken=consumption_token
            ),
            timeout,
            answer_bound=True,
        )
        return parse_expiration(response)

    def get_license(self, license_arn: str, *, timeout: float | None = None) -> LicenseStatus:
        response = self._call(
            "GetLicense",
            lambda client: client.get_license(LicenseArn=license_arn),
            timeout,
            answer_bound=True,
        )
        return parse_license(response)

    def list_received(
        self, contract: ContractProduct, *, timeout: float | None = None
    ) -> list[LicenseStatus]:
        """The buyer's licenses for the product from the Marketplace issuer (first page)."""
        response = self._call(
            "ListReceivedLicenses",
            lambda client: client.list_received_licenses(
                Filters=[
                    {"Name": "ProductSKU", "Values": [contract.product_id]},
                    {"Name": "Fingerprint", "Values": [contract.key_fingerprint]},
                ]
            ),
            timeout,
            answer_bound=True,
        )
        licenses = response.get("Licenses")
        return [
            parse_license({"License": item})
            for item in (licenses if isinstance(licenses, list) else [])
        ]


def _override_refused(source: str, value: object) -> ConfigurationError:
    return ConfigurationError(
        f"{source}={one_line(value, 80)!r} would send License Manager calls elsewhere than AWS, "
        "and their answers carry no signature to check",
        remedy=f"unset it; an image meant for a test endpoint passes {FLAG} in its ENTRYPOINT",
    )


def create_license_client(
    *, region: str, connect_timeout: float, read_timeout: float, allow_overrides: bool
) -> BotocoreLicenseClient:
    """The client a start uses: botocore's, in ``region``, pinned unless ``allow_overrides``."""
    return BotocoreLicenseClient(
        region=region,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        allow_overrides=allow_overrides,
    )
