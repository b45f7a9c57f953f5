"""Static checks of the Dockerfiles and lock files: fast, no root or buildah needed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support import REPO

DOCKERFILES = [
    REPO / "docker" / "Dockerfile",
    REPO / "docker" / "example" / "product" / "Dockerfile",
    REPO / "docker" / "example" / "copy" / "Dockerfile",
    Path(__file__).with_name("naive.Dockerfile"),
]
HADOLINT = Path(sys.executable).with_name("hadolint")
ENTRYPOINT = (
    '["tini", "--", "marketplace-entrypoint", "--keys-dir", '
    '"/etc/marketplace-entrypoint/keys", "--"]'
)
# One requirement of a pip lock file: "name==version [; marker]" then "--hash=sha256:..." lines.
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)(?: ;[^\\]*)?\s*\\$")
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}(?: \\)?$")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_is_clean(dockerfile: Path) -> None:
    assert HADOLINT.is_file(), "hadolint comes with the dev dependencies (make test installs it)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("dockerfile", DOCKERFILES[:3], ids=lambda p: str(p.relative_to(REPO)))
def test_entrypoint_is_the_documented_exec_form(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    entrypoints = re.findall(r"^ENTRYPOINT (.*)$", text, re.MULTILINE)
    if dockerfile.parent.name == "product":
        assert entrypoints == []  # inherited from the base: the product sets only CMD
        assert re.findall(r"^(FROM|CMD|ARG)\b", text, re.MULTILINE) == ["ARG", "FROM", "CMD"]
        return
    assert entrypoints == [ENTRYPOINT]
    assert json.loads(entrypoints[0])[0] == "tini"
    assert ENTRYPOINT in (REPO / "README.md").read_text()


def parse_lock(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for a ``--generate-hashes`` lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pin = _PIN.match(line)
        if pin:
            current = pin.group(1).lower().replace("_", "-")
            pins[current] = (pin.group(2), 0)
        else:
            assert _HASH.match(line), f"{path.name}: unexpected line {line!r}"
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


@pytest.mark.parametrize("lock", ["requirements.lock", "build-requirements.lock"])
def test_every_locked_package_is_pinned_with_hashes(lock: str) -> None:
    pins = parse_lock(REPO / "docker" / lock)
    assert pins
    assert all(hashes >= 1 for _, hashes in pins.values()), pins


def test_runtime_lock_satisfies_the_package_dependencies() -> None:
    """docker/requirements.lock pins every dependency pyproject.toml declares, within range:
    regenerate it with `make image-lock` after changing them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = parse_lock(REPO / "docker" / "requirements.lock")
    for spec in project["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower()
        assert name in pins, f"{name} is not in docker/requirements.lock"
        assert requirement.specifier.contains(pins[name][0]), (spec, pins[name][0])


def test_build_lock_satisfies_the_build_backend() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = parse_lock(REPO / "docker" / "build-requirements.lock")
    for spec in project["build-system"]["requires"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(pins[requirement.name.lower()][0]), spec
