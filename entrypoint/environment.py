"""The AWS settings botocore reads from the environment, checked before botocore reads them.

The buyer writes the task definition, so every one of these variables is untrusted input. botocore
(and urllib3 under it) takes most of them as they are and fails late, or not at all: a port of
``70000`` or ``8x8`` is a ``ValueError`` on every attempt, an authorization token with a non-Latin-1
character a transport error retried for the whole deadline, a non-ASCII endpoint path a signature
mismatch. Each is the operator's mistake, so it is refused here at once (exit 78) with the
variable's name, before any network call, and botocore keeps doing everything else it does with
them (endpoint resolution, the credential chain).

Pure: the functions take the environment as a mapping and touch nothing else. Empty values count
as unset, as in the AWS SDKs.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from .errors import ConfigurationError, one_line

__all__ = ["ENDPOINT_VARIABLES", "check_aws_environment", "check_header_value", "check_url"]

# Variables that name an http(s) endpoint the bootstrap's process may talk to (botocore's
# configured-endpoint settings for the services a start calls, the container credentials and
# IMDS endpoints botocore's providers use, and ECS task metadata for the Region).
ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL_MARKETPLACE_METERING",
    "AWS_ENDPOINT_URL_LICENSE_MANAGER",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "ECS_CONTAINER_METADATA_URI_V4",
)
# Sent as HTTP header values by botocore's container credentials provider.
HEADER_VARIABLES = ("AWS_CONTAINER_AUTHORIZATION_TOKEN",)
_SCHEMES = ("http", "https")


def _refuse(name: str, value: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"{name}={one_line(value, 80)!r} {why}",
        remedy=f"fix {name}, or unset it to use the platform's default",
    )


def check_url(name: str, value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host and a usable port; else
    `ConfigurationError` naming ``name``.

    Refused: anything but printable ASCII (RFC 3986 URLs are ASCII; urllib3 and botocore's signer
    would disagree on the rest), another scheme, no host, a port out of 1-65535 or not a number,
    an IPv6 literal without its closing bracket, and credentials in the authority (``user@``):
    no AWS endpoint has them, and parsers disagree on where such a host ends.
    """
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise _refuse(name, value, "is not a URL: only printable ASCII without spaces is allowed")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise _refuse(name, value, f"is not a URL: {one_line(exc, 80)}") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise _refuse(name, value, "is not an http:// or https:// URL")
    if "@" in parts.netloc or "\\" in parts.netloc:
        raise _refuse(name, value, "has credentials or a backslash in its host part")
    if not parts.hostname:
        raise _refuse(name, value, "has no host")
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise _refuse(name, value, "has an empty or zero port")
    return value


def check_header_value(name: str, value: str) -> str:
    """``value`` if it can be sent as an HTTP header value (RFC 9110 §5.5: visible ASCII, spaces
    and tabs); else `ConfigurationError` naming ``name``. Never shows the value: it is a secret."""
    if not all(c == "\t" or " " <= c <= "~" for c in value):
        raise ConfigurationError(
            f"{name} holds characters an HTTP header cannot carry (only printable ASCII)",
            remedy=f"set {name} to the token the platform issued",
        )
    return value


def _check_relative_uri(value: str) -> None:
    """botocore appends AWS_CONTAINER_CREDENTIALS_RELATIVE_URI to ``http://169.254.170.2``: it
    must be a path, or the sum names another host (``@192.0.2.10/creds``)."""
    name = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
    if not value.startswith("/") or value.startswith("//"):
        raise _refuse(name, value, "is not a path starting with a single /")
    check_url(name, "http://169.254.170.2" + value)


def check_aws_environment(environ: Mapping[str, str]) -> None:
    """Refuse, naming the variable, any AWS setting in ``environ`` that botocore would choke on
    or that could send a request elsewhere than the variable seems to say."""
    for name in ENDPOINT_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            check_url(name, value)
    for name in HEADER_VARIABLES:
        value = environ.get(name, "")
        if value:
            check_header_value(name, value)
    relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "").strip()
    if relative:
        _check_relative_uri(relative)
