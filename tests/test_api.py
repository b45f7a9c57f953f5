"""The in-process API and the package's public surface."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import entrypoint
from entrypoint import (
    ConfigurationError,
    Entitlement,
    EntrypointError,
    ExitCode,
    NotEntitledError,
    ensure_entitled,
)
from entrypoint.emulator import Emulator

from .conftest import PRODUCT
from .support import base_env


@pytest.fixture
def environment(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The process environment of a task pointed at the emulator (the SDK reads it)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "MARKETPLACE_")):
            monkeypatch.delenv(name)
    for name, value in base_env(emulator).items():
        monkeypatch.setenv(name, value)
    return emulator


def test_ensure_entitled_returns_the_verified_entitlement(
    environment: Emulator, keys_dir: Path
) -> None:
    emulator = environment
    result = ensure_entitled(keys_dir=keys_dir)
    assert isinstance(result, Entitlement)
    assert result.product_code == PRODUCT
    assert result.public_key_version == 1
    assert result.region == emulator.region
    assert result.verified.nonce == emulator.calls()[0].nonce


def test_ensure_entitled_with_an_explicit_region(
    environment: Emulator, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    result = ensure_entitled(keys_dir=keys_dir, region=environment.region)
    assert result.region_source == "argument"


def test_ensure_entitled_raises_with_exit_code_and_diagnosis(
    environment: Emulator, keys_dir: Path
) -> None:
    environment.configure(PRODUCT, outcome="not-entitled")
    with pytest.raises(NotEntitledError) as caught:
        ensure_entitled(keys_dir=keys_dir)
    assert caught.value.exit_code == ExitCode.NOT_ENTITLED
    assert caught.value.diagnosis().startswith("not entitled: ")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"deadline": -1}, r"^deadline='-1' is invalid"),
        ({"product_code": "bad code"}, r"^product_code='bad code' is invalid"),
        ({"public_key_version": 0}, r"^public_key_version='0' is invalid"),
        ({"region": "Mars"}, r"^region='Mars' is not an AWS Region name"),
    ],
)
def test_ensure_entitled_argument_errors(
    environment: Emulator, keys_dir: Path, kwargs: dict[str, object], reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        ensure_entitled(keys_dir=keys_dir, **kwargs)  # type: ignore[arg-type]
    assert environment.calls() == []


def test_public_surface_is_complete_and_importable() -> None:
    for name in entrypoint.__all__:
        assert getattr(entrypoint, name) is not None, name
    assert issubclass(entrypoint.VerificationError, EntrypointError)
    with pytest.raises(AttributeError):
        entrypoint.no_such_thing  # noqa: B018


def test_importing_the_package_does_not_load_the_aws_sdk() -> None:
    import subprocess
    import sys

    code = "import entrypoint, entrypoint.cli, sys; print('botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
