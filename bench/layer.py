"""Image layer size: what the entrypoint adds over its base, against a plain
``pip install boto3 pyjwt cryptography`` layer (same versions, same base), both built here.

The image suite measures it (tests/image/test_layer_size.py, issue 4) with buildah builds from a
debootstrap base; this runs that test and reads its report. Without buildah or root the figure
is skipped with the reason, as issue 7 allows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import REPO

REPORT = (
    Path(os.environ.get("MARKETPLACE_IMAGE_CACHE", "/var/cache/marketplace-entrypoint"))
    / "logs"
    / "layer-sizes.json"
)


def measure() -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        return {"skipped": "needs root, buildah and debootstrap (see tests/image)"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "image",
            "tests/image/test_layer_size.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0 or not REPORT.is_file():
        return {"skipped": f"the layer-size build failed: {run.stdout[-400:]}"}
    sizes = json.loads(REPORT.read_text())
    return {
        "entrypoint_layer_mb": sizes["entrypoint_layer_bytes"] / 1e6,
        "naive_layer_mb": sizes["naive_layer_bytes"] / 1e6,
        "ratio": sizes["ratio"],
        "ratio_gzip": sizes["ratio_gzip"],
        "ratio_without_pip_setuptools": sizes["ratio_without_pip_setuptools"],
        "targets": {"ratio": 0.5},
    }
