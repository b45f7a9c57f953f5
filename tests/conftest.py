from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint.emulator import Emulator, ProductBehavior

from .support import KEYS

PRODUCT = "prod-test"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running Metering emulator with one entitled product, ``prod-test`` (key v1)."""
    with Emulator(products={PRODUCT: ProductBehavior()}, key_factory=KEYS.factory) as em:
        yield em


@pytest.fixture
def keys_dir(emulator: Emulator, tmp_path: Path) -> Path:
    """The keys directory that trusts the emulator's products."""
    return emulator.write_keys(tmp_path / "keys")
