"""The credential providers a container task uses, in botocore's order, without botocore.

1. environment: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` [+ ``AWS_SESSION_TOKEN``];
2. IRSA: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` [+ ``AWS_ROLE_SESSION_NAME``]:
   STS ``AssumeRoleWithWebIdentity``, an unsigned form POST answered in XML;
3. ECS container credentials: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (at 169.254.170.2) or
   ``..._FULL_URI`` (https, loopback, or the ECS/EKS agent addresses only, as botocore allows),
   with ``AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]``;
4. EC2 instance metadata (IMDSv2), unless ``AWS_EC2_METADATA_DISABLED``.

The ``method`` of the result is botocore's provider name, so the log and ``check`` describe the
source the same way on both paths. Failures are classified as in `entrypoint.metering`: not ready
yet (endpoint errors, STS throttling) is `Transient` and retried; a missing role ARN, an unreadable
token file, a refused URI or an STS refusal is a `ConfigurationError` with its remedy.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse

# STS answers are capped at 64 KiB and expat >= 2.4 limits entity expansion (billion laughs).
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from entrypoint._version import __version__
from entrypoint.answers import (
    IDENTITY_FILE_REMEDY,
    ROLE_REMEDY,
    Transient,
    classify_sts_error,
)
from entrypoint.errors import ConfigurationError, EntrypointError, one_line

from . import transport
from .eligibility import endpoint_for

__all__ = ["AwsCredentials", "FallbackToBotocore", "resolve_credentials"]

# botocore's ContainerMetadataFetcher: 2 s per request; hosts it allows for plain http.
CONTAINER_TIMEOUT = 2.0
ECS_AGENT = "http://169.254.170.2"
_ALLOWED_CONTAINER_HOSTS = frozenset(
    {"169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"}
)
IMDS_TIMEOUT = 1.0  # botocore's metadata_service_timeout default
STS_TIMEOUT = 10.0
MAX_CREDENTIALS_ANSWER = 64 * 1024
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
# Refresh credentials this long before they expire (botocore's advisory window is 15 minutes).
REFRESH_BEFORE_EXPIRY = timedelta(minutes=5)


class FallbackToBotocore(Exception):  # noqa: N818 - a decision, not a failure
    """This environment needs something only botocore implements (e.g. IMDSv1)."""


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expiration: datetime | None
    method: str

    def __repr__(self) -> str:
        return f"AwsCredentials({self.method}, access_key_id={self.access_key_id[:4]}…)"

    def fresh(self, now: datetime) -> bool:
        return self.expiration is None or self.expiration - REFRESH_BEFORE_EXPIRY > now


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123 - a path from the platform
            return handle.read(MAX_CREDENTIALS_ANSWER)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc, 80)
        raise ConfigurationError(
            f"cannot read {path} ({what}): {reason}", remedy=IDENTITY_FILE_REMEDY
        ) from None


def _from_environment(environ: Mapping[str, str]) -> AwsCredentials | None:
    key = environ.get("AWS_ACCESS_KEY_ID", "")
    if not key:
        return None
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not secret:
        raise ConfigurationError(
            "no usable AWS credentials (AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not)",
            remedy=ROLE_REMEDY,
        )
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None
    return AwsCredentials(
        key, secret, token, _parse_time(environ.get("AWS_CREDENTIAL_EXPIRATION")), "env"
    )


def _sts_error(body: bytes) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)  # noqa: S314 - capped, from the configured STS endpoint
    except ET.ParseError:
        return "", one_line(body[:200].decode("utf-8", "replace"), 200)
    code = root.findtext(f".//{_STS_NS}Code") or root.findtext(".//Code") or ""
    message = root.findtext(f".//{_STS_NS}Message") or root.findtext(".//Message") or ""
    return code, message


def _from_web_identity(
    environ: Mapping[str, str], region: str, now: datetime
) -> AwsCredentials | None:
    token_file = environ.get("AWS_WEB_IDENTITY_TOKEN_FILE", "").strip()
    if not token_file:
        return None
    role_arn = environ.get("AWS_ROLE_ARN", "").strip()
    if not role_arn:
        raise ConfigurationError(
            "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not",
            remedy="annotate the ServiceAccount with eks.amazonaws.com/role-arn (IRSA)",
        )
    token = _read_file(token_file, "the IRSA web identity token").strip()
    session = environ.get("AWS_ROLE_SESSION_NAME", "").strip() or (
        f"marketplace-entrypoint-{int(now.timestamp())}"
    )
    endpoint = endpoint_for("sts", region, environ)
    if endpoint is None:  # pragma: no cover - eligibility already sent these to botocore
        raise FallbackToBotocore(f"no standard STS endpoint for {region}")
    form = urllib.parse.urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": session,
            "WebIdentityToken": token,
        }
    ).encode("ascii")
    try:
        answer = transport.request(
            "POST",
            endpoint.rstrip("/") + "/",
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "User-Agent": f"marketplace-entrypoint/{__version__}",
            },
            body=form,
            connect_timeout=STS_TIMEOUT,
            read_timeout=STS_TIMEOUT,
            max_bytes=MAX_CREDENTIALS_ANSWER,
            environ=environ,
        )
    except transport.TransportError as exc:
        raise Transient(exc.kind, f"STS: {exc.detail}") from None
    if answer.status != 200 or answer.truncated:
        code, message = _sts_error(answer.body)
        classified = classify_sts_error(code, answer.status, message)
        raise classified
    try:
        root = ET.fromstring(answer.body)  # noqa: S314 - capped, from the configured STS endpoint
    except ET.ParseError:
        raise Transient("STS", "AssumeRoleWithWebIdentity answer is not XML") from None
    fields = {
        name: root.findtext(f".//{_STS_NS}Credentials/{_STS_NS}{name}")
        or root.findtext(f".//Credentials/{name}")
        for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    }
    if not (fields["AccessKeyId"] and fields["SecretAccessKey"] and fields["SessionToken"]):
        raise Transient("STS", "AssumeRoleWithWebIdentity answer has no credentials")
    return AwsCredentials(
        fields["AccessKeyId"],
        fields["SecretAccessKey"],
        fields["SessionToken"],
        _parse_time(fields["Expiration"]),
        "assume-role-with-web-identity",
    )


def _container_url(environ: Mapping[str, str]) -> str | None:
    relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "").strip()
    if relative:
        return ECS_AGENT + relative
    full = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "").strip()
    if not full:
        return None
    parts = urllib.parse.urlsplit(full)
    host = parts.hostname or ""
    allowed = parts.scheme == "https" or host in _ALLOWED_CONTAINER_HOSTS
    if not allowed:
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = False
    if not allowed:
        raise ConfigurationError(
            f"the credentials configuration was refused: Unsupported host {host!r} in "
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            remedy="AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback, or the ECS "
            "agent's address",
        )
    return full


def _json_credentials(body: bytes, method: str, source: str) -> AwsCredentials:
    try:
        data = json.loads(body)
    except ValueError:
        raise Transient("CredentialRetrievalError", f"{source} answer is not JSON") from None
    if not isinstance(data, dict):
        raise Transient("CredentialRetrievalError", f"{source} answer is not a JSON object")
    key, secret = data.get("AccessKeyId"), data.get("SecretAccessKey")
    token = data.get("Token")
    if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
        raise Transient("CredentialRetrievalError", f"{source} answer has no credentials")
    return AwsCredentials(
        key,
        secret,
        token if isinstance(token, str) and token else None,
        _parse_time(data.get("Expiration")),
        method,
    )


def _from_container(environ: Mapping[str, str]) -> AwsCredentials | None:
    url = _container_url(environ)
    if url is None:
        return None
    headers = {"Accept": "application/json"}
    token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "").strip()
    token = (
        _read_file(token_file, "the container authorization token")
        if token_file
        else environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")
    )
    if token:
        if "\r" in token or "\n" in token:
            raise ConfigurationError(
                "the container authorization token holds a line break",
                remedy="check AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]",
            )
        headers["Authorization"] = token
    try:
        answer = transport.request(
            "GET",
            url,
            headers=headers,
            connect_timeout=CONTAINER_TIMEOUT,
            read_timeout=CONTAINER_TIMEOUT,
            max_bytes=MAX_CREDENTIALS_ANSWER,
            environ=environ,
        )
    except transport.TransportError as exc:
        raise Transient("CredentialRetrievalError", f"container credentials: {exc}") from None
    if answer.status != 200 or answer.truncated:
        raise Transient(
            "CredentialRetrievalError",
            f"container credentials endpoint answered HTTP {answer.status}",
        )
    return _json_credentials(answer.body, "container-role", "container credentials")


def _imds_get(url: str, token: str, environ: Mapping[str, str]) -> transport.Response:
    return transport.request(
        "GET",
        url,
        headers={"X-aws-ec2-metadata-token": token},
        connect_timeout=IMDS_TIMEOUT,
        read_timeout=IMDS_TIMEOUT,
        max_bytes=MAX_CREDENTIALS_ANSWER,
        environ=environ,
    )


def _from_instance_metadata(environ: Mapping[str, str]) -> AwsCredentials | None:
    """The node role, as botocore's InstanceMetadataProvider: no answer means no credentials."""
    if environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
        return None
    from entrypoint.region import imds_endpoint

    base = imds_endpoint(environ)
    try:
        token_answer = transport.request(
            "PUT",
            base + "latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            connect_timeout=IMDS_TIMEOUT,
            read_timeout=IMDS_TIMEOUT,
            max_bytes=4096,
            environ=environ,
        )
    except (transport.TransportError, transport.TlsError):
        return None  # not on EC2 (or IMDS unreachable): botocore finds no credentials here too
    if token_answer.status in (403, 404, 405):
        raise FallbackToBotocore("IMDS refused a v2 session token; botocore can try IMDSv1")
    if token_answer.status != 200:
        return None
    token = token_answer.body.decode("utf-8", "replace").strip()
    prefix = base + "latest/meta-data/iam/security-credentials/"
    try:
        names = _imds_get(prefix, token, environ)
        if names.status != 200:
            return None
        role = names.body.decode("utf-8", "replace").strip().splitlines()[0].strip()
        answer = _imds_get(prefix + urllib.parse.quote(role), token, environ)
    except (transport.TransportError, transport.TlsError, IndexError):
        return None
    if answer.status != 200:
        return None
    return _json_credentials(answer.body, "iam-role", "instance metadata")


def resolve_credentials(
    environ: Mapping[str, str], region: str, *, now: datetime | None = None
) -> AwsCredentials:
    """The first credentials the chain yields, or raise (configuration error, transient, or
    `FallbackToBotocore`)."""
    current = now or datetime.now(UTC)
    for provider in (
        _from_environment,
        lambda env: _from_web_identity(env, region, current),
        _from_container,
        _from_instance_metadata,
    ):
        try:
            found = provider(environ)
        except (EntrypointError, Transient, FallbackToBotocore):
            raise
        except transport.TlsError as exc:
            raise ConfigurationError(
                f"TLS to a credentials endpoint failed: {exc}",
                remedy="check AWS_CA_BUNDLE, any TLS-inspecting proxy, and this host's clock",
            ) from None
        if found is not None:
            return found
    raise ConfigurationError(
        "no AWS credentials found (no task role, no IRSA, no keys)", remedy=ROLE_REMEDY
    )
