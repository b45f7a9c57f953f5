"""Fixtures for the image tests: tools, cached base images, the images under test, the emulator.

Without root, buildah or debootstrap the image tests skip with the reason; with
``MARKETPLACE_REQUIRE_IMAGE_TESTS=1`` (set by .ci/run) that skip is a failure instead, so CI can
never pass without having built and run the images. The same holds for the other architecture
(arm64 on an amd64 machine): without QEMU registered with binfmt_misc (``make emulation``) its
tests skip with the reason, and fail in CI.

docker/Dockerfile is built for linux/amd64 and linux/arm64 by one ``buildah bud --platform
linux/amd64,linux/arm64 --manifest`` from a manifest list of the two Debian bases, as a seller
builds it FROM a multi-architecture ``python`` image; ``entrypoint_image`` is this machine's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.emulator.tokens import TokenSigner
from tests.support import REPO

from .buildah import CACHE, Buildah, DebianBase, debian_image, locked
from .emulation import emulation_missing, host_arch

PRODUCT = "prod-image-test"
REQUIRED = os.environ.get("MARKETPLACE_REQUIRE_IMAGE_TESTS", "") == "1"
TOOLS = ("buildah", "debootstrap", "unshare", "mount", "tar", "dpkg")
# The entrypoint's build base: what the official Python images give (python3 with venv, CA
# certificates), made from Debian's packages.
BUILD_BASE = DebianBase("debian-python", "bookworm", ("python3", "python3-venv", "ca-certificates"))
# A seller's own image for the copy example: python3 only (no venv, pip, tini or CA bundle).
PRODUCT_BASE = DebianBase("debian-python3-only", "bookworm", ("python3",))
# The next Debian release, with another Python (3.13): the stand-in for the default BASE_IMAGE,
# python:3.13-slim-trixie, which cannot be pulled here.
TRIXIE_BASE = DebianBase(
    "debian-python-trixie", "trixie", ("python3", "python3-venv", "ca-certificates")
)
# What docker/Dockerfile is built for: EKS add-ons must run on AMD64 and ARM64 (AWS Graviton).
ARCHES = ("amd64", "arm64")
HOST_ARCH = host_arch()
# The HTTPS proxy's CA on these machines, passed as a build secret (shared/image-testing.md).
PROXY_CA = Path("/etc/ssl/certs/ca-certificates.crt")

# Sizes and build times, printed at the end of the session (pytest_terminal_summary).
REPORT: dict[str, Any] = {}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the image tests need root (buildah, chroot and namespaces)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install buildah debootstrap tini uidmap)"
    return None


@pytest.fixture(scope="session")
def buildah() -> Iterator[Buildah]:
    """buildah on the suite's storage, for this session alone."""
    reason = _missing()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"MARKETPLACE_REQUIRE_IMAGE_TESTS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    tool = Buildah()
    # One image-test session at a time per machine (CI and a developer's run may overlap): the
    # storage is shared, and the clean-up below must not touch another session's containers.
    with locked("session"):
        tool.remove_containers()  # left by a session that was killed
        yield tool
        # buildah 1.28 leaves the working container of a stage that only serves COPY --from
        # (docker/example/copy's "entrypoint" stage); and earlier builds of each image go.
        tool.remove_containers()
        tool.drop_stale()


def _stable_key(product_code: str, version: int) -> rsa.RSAPrivateKey:
    """The emulator's signing key, kept in the cache so built images stay valid between runs."""
    path = CACHE / "test-keys" / f"{product_code}-v{version}.pem"
    with locked("test-keys"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            partial = path.with_suffix(".partial")
            partial.write_bytes(pem)
            partial.chmod(0o600)
            partial.rename(path)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The Metering emulator on loopback, signing with the key the test images trust."""
    with Emulator(products={PRODUCT: ProductBehavior()}, key_factory=_stable_key) as em:
        yield em


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail in CI, where every image test must run."""
    if REQUIRED:
        pytest.fail(f"MARKETPLACE_REQUIRE_IMAGE_TESTS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def build_base(arch: str) -> DebianBase:
    """BUILD_BASE for ``arch``: this machine's, or a foreign one made under emulation."""
    if arch == HOST_ARCH:
        return BUILD_BASE
    return dataclasses.replace(BUILD_BASE, name=f"{BUILD_BASE.name}-{arch}", arch=arch)


@pytest.fixture(scope="session")
def debian_python(buildah: Buildah) -> str:
    return debian_image(buildah, BUILD_BASE)


@pytest.fixture(scope="session")
def runnable_arches() -> dict[str, str | None]:
    """{arch: None if its binaries run here, else why not} for every arch in ARCHES."""
    return {arch: emulation_missing(arch) for arch in ARCHES}


@pytest.fixture(scope="session")
def debian_python_bases(
    buildah: Buildah, debian_python: str, runnable_arches: dict[str, str | None]
) -> dict[str, str]:
    """The build base for every architecture that can run here ({arch: tag})."""
    bases = {HOST_ARCH: debian_python}
    for arch, missing in runnable_arches.items():
        if missing is None and arch not in bases:
            bases[arch] = debian_image(buildah, build_base(arch))
    return bases


@pytest.fixture(scope="session")
def debian_python3_only(buildah: Buildah) -> str:
    return debian_image(buildah, PRODUCT_BASE)


@pytest.fixture(scope="session")
def debian_python_trixie(buildah: Buildah) -> str:
    return debian_image(buildah, TRIXIE_BASE)


def build_secrets() -> dict[str, Path]:
    return {"pipca": PROXY_CA} if PROXY_CA.is_file() else {}


def record_build(name: str, tag: str, seconds: float | None) -> None:
    REPORT.setdefault("builds", {})[name] = (tag, seconds)


@pytest.fixture(scope="session")
def entrypoint_context() -> Iterator[Path]:
    """A build context like the repository's root, with the test product's key in keys/."""
    with tempfile.TemporaryDirectory(prefix="mpe-context-") as scratch:
        context = Path(scratch)
        shutil.copytree(REPO / "docker", context / "docker")
        shutil.copytree(
            REPO / "entrypoint",
            context / "entrypoint",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, context / name)
        keys = TokenSigner(_stable_key).write_keys(context / "keys", {PRODUCT: (1,)})
        shutil.copy2(REPO / "keys" / "README.md", keys / "README.md")
        yield context


@pytest.fixture(scope="session")
def entrypoint_images(
    buildah: Buildah, debian_python_bases: dict[str, str], entrypoint_context: Path
) -> dict[str, str]:
    """docker/Dockerfile built as a seller would, from the test product's build context, for
    every architecture at once: ``buildah bud --platform linux/amd64,linux/arm64 --manifest``
    FROM a manifest list of the Debian bases. Returns {arch: tag}."""
    arches = [arch for arch in ARCHES if arch in debian_python_bases]
    base = buildah.manifest_list(
        "debian-python-multiarch", {arch: debian_python_bases[arch] for arch in arches}
    )
    tags, seconds = buildah.cached_manifest_build(
        "entrypoint",
        entrypoint_context,
        dockerfile=entrypoint_context / "docker" / "Dockerfile",
        platforms=[f"linux/{arch}" for arch in arches],
        build_args={"BASE_IMAGE": base},
        secrets=build_secrets(),
    )
    record_build(f"entrypoint (docker/Dockerfile, {' + '.join(arches)})", tags[HOST_ARCH], seconds)
    return tags


@pytest.fixture(scope="session")
def entrypoint_image(entrypoint_images: dict[str, str]) -> str:
    """docker/Dockerfile for this machine's architecture."""
    return entrypoint_images[HOST_ARCH]


def image_for(images: dict[str, str], arch: str, runnable: dict[str, str | None]) -> str:
    """``images[arch]``, or the skip (a failure in CI) saying why that arch cannot run here."""
    if arch not in images:
        unavailable(f"the {arch} image cannot be built or run here: {runnable[arch]}")
    return images[arch]


@pytest.fixture(scope="session", params=ARCHES)
def entrypoint_image_each(
    request: pytest.FixtureRequest,
    entrypoint_images: dict[str, str],
    runnable_arches: dict[str, str | None],
) -> str:
    """docker/Dockerfile's image for each architecture in turn."""
    return image_for(entrypoint_images, request.param, runnable_arches)


@pytest.fixture(scope="session")
def entrypoint_image_arm64(
    entrypoint_images: dict[str, str], runnable_arches: dict[str, str | None]
) -> str:
    return image_for(entrypoint_images, "arm64", runnable_arches)


@pytest.fixture(scope="session")
def entrypoint_image_trixie(
    buildah: Buildah, debian_python_trixie: str, entrypoint_context: Path
) -> str:
    """docker/Dockerfile built FROM Debian trixie (Python 3.13)."""
    tag, seconds = buildah.cached_build(
        "entrypoint-trixie",
        entrypoint_context,
        dockerfile=entrypoint_context / "docker" / "Dockerfile",
        build_args={"BASE_IMAGE": debian_python_trixie},
        secrets=build_secrets(),
    )
    record_build("entrypoint on Debian trixie", tag, seconds)
    return tag


@pytest.fixture(scope="session", params=ARCHES)
def product_image(
    request: pytest.FixtureRequest,
    buildah: Buildah,
    entrypoint_images: dict[str, str],
    runnable_arches: dict[str, str | None],
) -> str:
    """docker/example/product: FROM the entrypoint image, CMD only; once per architecture, so
    every test of it runs on amd64 and, emulated, on arm64."""
    arch: str = request.param
    entrypoint = image_for(entrypoint_images, arch, runnable_arches)
    context = REPO / "docker" / "example" / "product"
    name = "product" if arch == HOST_ARCH else f"product-{arch}"
    tag, seconds = buildah.cached_build(
        name,
        context,
        dockerfile=context / "Dockerfile",
        build_args={"ENTRYPOINT_IMAGE": entrypoint},
        options=["--platform", f"linux/{arch}"],
    )
    record_build(f"product example ({arch})", tag, seconds)
    return tag


@pytest.fixture(scope="session")
def copy_image(buildah: Buildah, entrypoint_image: str, debian_python3_only: str) -> str:
    """docker/example/copy: the entrypoint copied into a different base (python3 only)."""
    context = REPO / "docker" / "example" / "copy"
    tag, seconds = buildah.cached_build(
        "copy",
        context,
        dockerfile=context / "Dockerfile",
        build_args={"ENTRYPOINT_IMAGE": entrypoint_image, "PRODUCT_IMAGE": debian_python3_only},
    )
    record_build("copy example", tag, seconds)
    return tag


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    write = terminalreporter.write_line
    terminalreporter.section("image tests")
    for name, (tag, seconds) in REPORT.get("builds", {}).items():
        how = "reused (inputs unchanged)" if seconds is None else f"built in {seconds:.0f}s"
        write(f"{name}: {tag} {how}")
    for line in REPORT.get("sizes", []):
        write(line)
