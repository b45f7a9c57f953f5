"""What the entrypoint adds to its base image, against a plain ``pip install`` of the same packages.

Both images are built FROM the same base; their added layers are exported uncompressed
(``buildah push --disable-compression dir:``) and measured as the layer tarballs a registry
stores, and gzip-compressed (what a pull transfers). Sizes are reported at the end of the session
(and in ``$MARKETPLACE_IMAGE_CACHE/logs/layer-sizes.json``), not asserted tightly: only that the
entrypoint's layer is smaller than the naive one, even once pip and setuptools are not counted.
The arm64 image's layer is measured the same way against its own (arm64) base.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import REPO

from .buildah import Buildah
from .conftest import REPORT, build_secrets, record_build

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

NAIVE = Path(__file__).with_name("naive.Dockerfile")
MB = 1_000_000


def locked_version(name: str) -> str:
    text = (REPO / "docker" / "requirements.lock").read_text()
    match = re.search(rf"^{re.escape(name)}==([^\s;\\]+)", text, re.MULTILINE)
    assert match is not None, f"{name} is not pinned in docker/requirements.lock"
    return match.group(1)


@pytest.fixture(scope="session")
def naive_image(buildah: Buildah, debian_python: str) -> str:
    with tempfile.TemporaryDirectory(prefix="mpe-naive-") as scratch:
        context = Path(scratch)
        shutil.copy2(NAIVE, context / "Dockerfile")
        tag, seconds = buildah.cached_build(
            "naive",
            context,
            dockerfile=context / "Dockerfile",
            build_args={
                "BASE_IMAGE": debian_python,
                "BOTO3_VERSION": locked_version("boto3"),
                "PYJWT_VERSION": locked_version("pyjwt"),
                "CRYPTOGRAPHY_VERSION": locked_version("cryptography"),
            },
            secrets=build_secrets(),
        )
    record_build("naive pip install (tests/image/naive.Dockerfile)", tag, seconds)
    return tag


def added_layers(buildah: Buildah, image: str, base: str) -> tuple[int, int]:
    """Bytes of the layers ``image`` adds on top of ``base``: (uncompressed tar, gzip -6)."""
    base_layers = set(buildah.diff_ids(base))
    with tempfile.TemporaryDirectory(prefix="mpe-layers-") as scratch:
        manifest = buildah.push_dir(image, Path(scratch) / "image")
        raw = packed = 0
        for layer in manifest["layers"]:
            if layer["digest"] in base_layers:
                continue
            blob = (Path(scratch) / "image" / layer["digest"].split(":", 1)[1]).read_bytes()
            raw += len(blob)
            packed += len(gzip.compress(blob, compresslevel=6, mtime=0))
    return raw, packed


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_entrypoint_layer_is_smaller_than_a_plain_pip_install(
    buildah: Buildah, entrypoint_image: str, naive_image: str, debian_python: str
) -> None:
    ours, ours_gz = added_layers(buildah, entrypoint_image, debian_python)
    naive, naive_gz = added_layers(buildah, naive_image, debian_python)
    # The naive layer's virtual environment also carries pip and setuptools; count without them
    # too, so the comparison is with the three packages alone.
    container = buildah("from", "--pull=never", "--quiet", naive_image).strip()
    try:
        site = Path(buildah("mount", container).strip()) / "opt/venv/lib/python3.11/site-packages"
        installers = sum(
            tree_bytes(p) if p.is_dir() else p.stat().st_size
            for p in site.iterdir()
            if re.match(
                r"(pip|setuptools|pkg_resources|_distutils_hack|distutils-precedence)", p.name
            )
        )
    finally:
        buildah("rm", container)
    packages_only = naive - installers
    sizes = {
        "entrypoint_layer_bytes": ours,
        "entrypoint_layer_gzip_bytes": ours_gz,
        "naive_layer_bytes": naive,
        "naive_layer_gzip_bytes": naive_gz,
        "naive_pip_setuptools_bytes": installers,
        "ratio": round(ours / naive, 3),
        "ratio_gzip": round(ours_gz / naive_gz, 3),
        "ratio_without_pip_setuptools": round(ours / packages_only, 3),
    }
    record_sizes(buildah, sizes)
    REPORT.setdefault("sizes", []).extend(
        [
            f"entrypoint layer: {ours / MB:.1f} MB ({ours_gz / MB:.1f} MB gzipped)",
            (
                f"plain pip install layer: {naive / MB:.1f} MB ({naive_gz / MB:.1f} MB gzipped), "
                f"{packages_only / MB:.1f} MB without pip and setuptools"
            ),
            (
                f"ratio: {sizes['ratio']} ({sizes['ratio_gzip']} gzipped; "
                f"{sizes['ratio_without_pip_setuptools']} against the packages alone)"
            ),
        ]
    )
    assert ours < packages_only < naive, sizes


def record_sizes(buildah: Buildah, sizes: dict[str, float]) -> None:
    """Merge ``sizes`` into $MARKETPLACE_IMAGE_CACHE/logs/layer-sizes.json."""
    path = buildah.cache / "logs" / "layer-sizes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps(recorded | sizes, indent=2) + "\n")


def test_arm64_layer_is_slimmed_like_the_amd64_one(
    buildah: Buildah,
    entrypoint_image: str,
    entrypoint_image_arm64: str,
    debian_python: str,
    debian_python_bases: dict[str, str],
) -> None:
    """Same Dockerfile, same lock, same cuts: the arm64 layer (aarch64 wheels) is within a
    fifth of the amd64 one. A cut that silently failed on arm64 would leave it twice as big."""
    amd64, _ = added_layers(buildah, entrypoint_image, debian_python)
    arm64, arm64_gz = added_layers(buildah, entrypoint_image_arm64, debian_python_bases["arm64"])
    record_sizes(
        buildah,
        {"arm64_entrypoint_layer_bytes": arm64, "arm64_entrypoint_layer_gzip_bytes": arm64_gz},
    )
    REPORT.setdefault("sizes", []).append(
        f"entrypoint layer, arm64: {arm64 / MB:.1f} MB ({arm64_gz / MB:.1f} MB gzipped)"
    )
    assert 0.8 < arm64 / amd64 < 1.2, (arm64, amd64)
