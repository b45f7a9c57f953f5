from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from entrypoint.emulator import Emulator, ProductBehavior

from .support import KEYS

PRODUCT = "prod-test"

# A shell that starts a command in the background without job control (`cmd &` in a script)
# sets SIGINT (and SIGQUIT) to SIG_IGN, nohup sets SIGHUP to SIG_IGN, and ignored signals are
# inherited across exec. The entrypoint rightly keeps an inherited SIG_IGN for its workload, so
# the signal suites would then test how the test runner was launched, not the product. Undo it
# here, once: every process a test starts then sees the default disposition of the signals the
# suites send (tests that need an inherited SIG_IGN set it up themselves).
for _signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1):
    if signal.getsignal(_signum) is signal.SIG_IGN:
        default = signal.default_int_handler if _signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(_signum, default)

# Property-based tests (issue 3). "ci" is what `make test` runs: thousands of examples per fuzz
# target, bounded (each target takes seconds; no per-example deadline on a shared 2-core
# machine). "fuzz" is for a long hunt: HYPOTHESIS_PROFILE=fuzz make test-fast. "dev" is quick.
settings.register_profile(
    "ci",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile(
    "fuzz", max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Lines a suite wants in the run's summary (the fleet simulation's numbers), shown even in CI.
REPORT_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in REPORT_LINES:
        terminalreporter.write_line(line)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running Metering emulator with one entitled product, ``prod-test`` (key v1)."""
    with Emulator(products={PRODUCT: ProductBehavior()}, key_factory=KEYS.factory) as em:
        yield em


@pytest.fixture
def keys_dir(emulator: Emulator, tmp_path: Path) -> Path:
    """The keys directory that trusts the emulator's products."""
    return emulator.write_keys(tmp_path / "keys")
