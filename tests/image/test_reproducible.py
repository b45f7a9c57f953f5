"""Two builds of docker/Dockerfile from the same inputs give the same image, byte for byte.

The inputs are pinned: the base image, the lock files (hashes), the source and the keys. What a
build adds on its own is made deterministic: pycs are checked-hash (no mtimes), gzip is written
with mtime 0, apt's logs are deleted, and ``buildah bud --timestamp 0`` sets every file's mtime
and the history dates (BuildKit: ``SOURCE_DATE_EPOCH`` with ``rewrite-timestamp=true``).
The two builds share no cache: without ``--layers`` buildah runs every step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .buildah import Buildah
from .conftest import build_secrets, record_build

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]


def test_two_builds_from_the_same_inputs_are_bit_identical(
    buildah: Buildah, debian_python: str, entrypoint_context: Path
) -> None:
    images = []
    for build in ("first", "second"):
        tag, seconds = buildah.cached_build(
            f"reproducible-{build}",
            entrypoint_context,
            dockerfile=entrypoint_context / "docker" / "Dockerfile",
            build_args={"BASE_IMAGE": debian_python},
            secrets=build_secrets(),
            options=["--timestamp", "0"],
        )
        record_build(f"reproducibility check, {build} build", tag, seconds)
        images.append(buildah.inspect(tag))
    first, second = (image["OCIv1"]["rootfs"]["diff_ids"] for image in images)
    assert first == second
    # Same layers and same configuration: the same image ID (the configuration's digest).
    assert images[0]["FromImageID"] == images[1]["FromImageID"]
