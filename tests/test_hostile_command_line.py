"""A command line the buyer can add to, through the real console script: trust is never steered.

An image's ENTRYPOINT without the trailing ``--`` lets its CMD, which the buyer writes, add
options after the image's: ``CMD ["--keys-dir", "/buyer/keys", "--", "app"]`` replaced the baked
keys directory (the last value won), and ``CMD ["demo", "--", "app"]`` behind
``ENTRYPOINT ["marketplace-entrypoint"]`` ran the workload with no RegisterUsage at all. Now every
option of the bootstrap is taken once (a repeat is a usage error, 64), and the production image
has no demo or emulator to run (tests/image/test_hostile.py; here, an installation without them).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator

from .support import REPO, Run, base_env, run_cli

REPEATED = [
    ("--keys-dir", "{keys}", "{other}"),
    ("--product-code", "prod-test", "prod-free"),
    ("--public-key-version", "1", "2"),
    ("--deadline", "5", "0.1"),
    ("--log-format", "text", "json"),
]


def assert_usage_error(run: Run, *fragments: str) -> None:
    assert run.returncode == ExitCode.USAGE, run.stderr
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: usage error: "), run.stderr
    for fragment in fragments:
        assert fragment in run.last_line, run.last_line


@pytest.mark.parametrize(("flag", "first", "second"), REPEATED, ids=[r[0] for r in REPEATED])
@pytest.mark.parametrize("spelling", ["separate", "equals"])
def test_an_option_given_twice_is_a_usage_error(
    emulator: Emulator,
    keys_dir: Path,
    tmp_path: Path,
    flag: str,
    first: str,
    second: str,
    spelling: str,
) -> None:
    """As ENTRYPOINT ``[marketplace-entrypoint, --keys-dir, <baked>]`` + a CMD of the buyer's."""
    values = [v.format(keys=keys_dir, other=tmp_path / "buyer-keys") for v in (first, second)]
    if spelling == "separate":
        options = [flag, values[0], flag, values[1]]
    else:
        options = [f"{flag}={values[0]}", f"{flag}={values[1]}"]
    if flag != "--keys-dir":
        options = ["--keys-dir", str(keys_dir), *options]
    report = tmp_path / "started"
    run = run_cli([*options, "--", "touch", str(report)], base_env(emulator))
    assert_usage_error(run, f"{flag} is given more than once", "ENTRYPOINT should end with --")
    assert not report.exists()
    assert emulator.calls() == []


def test_check_takes_each_option_once_too(emulator: Emulator, keys_dir: Path) -> None:
    run = run_cli(["check", "--keys-dir", str(keys_dir), "--keys-dir", "/x"], base_env(emulator))
    assert_usage_error(run, "--keys-dir is given more than once")


def test_options_after_the_double_dash_are_the_workloads(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The trailing ``--`` of the image's ENTRYPOINT makes the whole CMD the workload's."""
    report = tmp_path / "argv"
    workload = ["/bin/sh", "-c", 'echo "$@" > "$0"', str(report), "--keys-dir", "/buyer/keys"]
    run = run_cli(["--keys-dir", str(keys_dir), "--", *workload], base_env(emulator))
    assert run.returncode == 0, run.stderr
    assert report.read_text().strip() == "--keys-dir /buyer/keys"


@pytest.fixture(scope="module")
def production_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as docker/image_build.py leaves it: no demo, no emulator."""
    root = tmp_path_factory.mktemp("production")
    shutil.copytree(
        REPO / "entrypoint",
        root / "entrypoint",
        ignore=shutil.ignore_patterns("__pycache__", "emulator", "demo.py"),
    )
    return root


@pytest.mark.parametrize("command", ["demo", "emulator"])
def test_a_development_tool_left_out_is_a_usage_error(
    production_install: Path, tmp_path: Path, command: str
) -> None:
    report = tmp_path / "started"
    launcher = (
        f"import sys; sys.path.insert(0, {str(production_install)!r}); "
        "from entrypoint.cli import main; main()"
    )
    run = run_cli(
        [command, "--", "touch", str(report)],
        base_env("http://127.0.0.1:9"),
        program=[sys.executable, "-I", "-c", launcher],
    )
    assert_usage_error(
        run,
        f"{command!r} is not part of this installation",
        "development tools, left out of the production image",
    )
    assert not report.exists()
