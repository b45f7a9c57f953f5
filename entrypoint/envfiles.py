"""Files the environment names, checked before botocore opens them.

botocore opens the files some AWS variables name and reads each one whole, as often as it needs
it: ``/dev/stdin`` (a pipe), a FIFO or a terminal blocks the start past any deadline, ``/dev/zero``
or a huge file is read into memory, and a 64 MiB web identity token is posted to STS whole. The
buyer writes the task definition, so each of these names is untrusted input. Before botocore
opens any of them, each named file is opened here without blocking (``O_NONBLOCK``: opening a
FIFO that has no writer, or a terminal, would otherwise wait), must be a regular file once
symbolic links are followed (``fstat``), and is read up to its cap (a ``/proc`` file's size says
0, so the size is what reading gives, not what ``st_size`` says). Anything else is a
configuration error (exit 78) that names the variable; botocore then reads the file as it always
does.

The AWS config and shared credentials files are not checked here: botocore reads them only if
``os.path.isfile`` says they are regular files (``botocore.configloader.raw_config_parse``), and a
missing or special one (``/dev/null``) counts as empty, as the SDKs document.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .answers import IDENTITY_FILE_REMEDY
from .environment import check_header_value
from .errors import ConfigurationError, one_line

__all__ = ["NAMED_FILES", "NamedFile", "check_named_files", "read_named_file"]


@dataclass(frozen=True, slots=True)
class NamedFile:
    """A variable naming a file botocore reads, and what the file may hold."""

    variable: str
    cap: int  # bytes
    remedy: str
    header: bool = False  # the content is sent as an HTTP header value
    directory: bool = False  # a directory is also accepted (not read)
    expand_user: bool = False  # botocore expands ``~`` in it


NAMED_FILES = (
    # Sent as the Authorization header to the container credentials endpoint (botocore's
    # ContainerProvider reads it on every fetch). EKS Pod Identity's token is a JWT of about a
    # kilobyte; 16 KiB is past any header a server takes (nginx's default limit is 8 KiB).
    NamedFile(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        16 * 1024,
        "point it at the token file the platform mounts (EKS Pod Identity: "
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token)",
        header=True,
    ),
    # Posted to STS AssumeRoleWithWebIdentity as WebIdentityToken, which the STS API model caps
    # at 20,000 characters (clientTokenType: min 4, max 20000).
    NamedFile("AWS_WEB_IDENTITY_TOKEN_FILE", 20_000, IDENTITY_FILE_REMEDY),
    # PEM certificates for TLS (or a directory of them, which botocore passes to OpenSSL as a CA
    # directory). A whole public trust store (certifi, Debian's ca-certificates.crt) is about
    # 300 KB; 8 MiB leaves room for any private CA bundle.
    NamedFile(
        "AWS_CA_BUNDLE",
        8 * 1024 * 1024,
        "point AWS_CA_BUNDLE at a PEM file of CA certificates, or unset it",
        directory=True,
    ),
    # The EC2 command-line tools' key=value credentials file (botocore's OriginalEC2Provider,
    # which opens it with no check at all).
    NamedFile(
        "AWS_CREDENTIAL_FILE",
        64 * 1024,
        "unset it: give the task an IAM role (ECS task role, or IRSA on EKS)",
        expand_user=True,
    ),
)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe or FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(spec: NamedFile, path: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"{spec.variable} names {one_line(path, 120)}, which {why}", remedy=spec.remedy
    )


def read_named_file(spec: NamedFile, value: str) -> bytes | None:
    """Open what ``value`` names as ``spec`` allows, without blocking; return its bytes (None for
    an accepted directory), or raise `ConfigurationError` naming ``spec.variable``."""
    path = str(Path(value).expanduser()) if spec.expand_user else value
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        # "cannot read <path>": the words botocore's own failure to open it gave (issue 5).
        raise ConfigurationError(
            f"cannot read {one_line(path, 120)} (named by {spec.variable}): {exc.strerror or exc}",
            remedy=spec.remedy,
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode) and spec.directory:
            return None
        if not stat.S_ISREG(mode):
            raise _refuse(spec, path, f"is {_kind(mode)}, not a regular file")
        data = _read_at_most(fd, spec.cap + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {one_line(path, 120)} (named by {spec.variable}): {exc.strerror or exc}",
            remedy=spec.remedy,
        ) from None
    finally:
        os.close(fd)
    if len(data) > spec.cap:
        raise _refuse(spec, path, f"holds more than {spec.cap} bytes")
    if spec.header:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            text = "\x00"  # refused just below, as any character no header can carry
        check_header_value(spec.variable, text)
    return data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(64 * 1024, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def check_named_files(environ: Mapping[str, str]) -> None:
    """Check every file of `NAMED_FILES` that ``environ`` names (empty counts as unset)."""
    for spec in NAMED_FILES:
        value = environ.get(spec.variable, "")
        if value:
            read_named_file(spec, value)
