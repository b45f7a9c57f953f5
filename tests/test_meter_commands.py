"""``meter add`` and ``meter status`` on the installed console script: exit codes, diagnoses, the
store they leave, and what ``meter add`` does not import (its start must stay cheap)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ExitCode
from entrypoint.meter.hours import hour_start, hour_text

from .meter_support import child_env, rows
from .support import Run, run_cli

PRODUCT = "prod-meter-add"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "shared" / "usage.db"


def env(store: Path, **extra: str | None) -> dict[str, str]:
    base = child_env(
        MARKETPLACE_PRODUCT_CODE=PRODUCT,
        MARKETPLACE_METER_STORE=str(store),
        MARKETPLACE_METER_DIMENSIONS="users,gb",
    )
    for name, value in extra.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def add(store: Path, *args: str, **extra: str | None) -> Run:
    return run_cli(["meter", "add", *args], env(store, **extra))


def status(store: Path, **extra: str | None) -> dict[str, Any]:
    run = run_cli(["meter", "status"], env(store, **extra))
    assert run.returncode == 0, run.stderr
    document: dict[str, Any] = json.loads(run.stdout)
    return document


def together(*runs: Any) -> list[Run]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: call(), runs))


def assert_failed(run: Run, code: ExitCode, diagnosis: str) -> None:
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    assert diagnosis in run.last_line, run.last_line


def test_meter_add_prints_the_hour_credited_and_status_shows_the_sum(store: Path) -> None:
    before = hour_text(hour_start(time.time()))
    first = add(store, "--dimension", "users", "--quantity", "3")
    second = add(store, "--dimension", "users", "--quantity", "0.25")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first.stderr == ""  # nothing is logged on success
    assert first.stdout.strip() in {before, hour_text(hour_start(time.time()))}
    document = status(store)
    assert document["product_code"] == PRODUCT
    assert document["dimensions"] == ["gb", "users"]
    assert document["durability"] == "process"
    assert sum(float(p["quantity"]) for p in document["pending"]) == 3.25
    assert document["lost"] == []


def test_meter_add_refusals(store: Path) -> None:
    old = str(time.time() - 6 * 3600 - 60)
    (
        undeclared,
        negative,
        too_old,
        not_a_time,
        no_store,
        no_product,
        bad_product,
        bad_durability_flag,
        bad_durability_env,
        json_log,
    ) = together(
        lambda: add(store, "--dimension", "cpus", "--quantity", "1"),
        lambda: add(store, "--dimension", "users", "--quantity", "-1"),
        lambda: add(store, "--dimension", "users", "--quantity", "1", "--timestamp", old),
        lambda: add(store, "--dimension", "users", "--quantity", "1", "--timestamp", "nan"),
        lambda: add(store, "--dimension", "users", "--quantity", "1", MARKETPLACE_METER_STORE=None),
        lambda: add(
            store, "--dimension", "users", "--quantity", "1", MARKETPLACE_PRODUCT_CODE=None
        ),
        lambda: add(
            store, "--dimension", "users", "--quantity", "1", MARKETPLACE_PRODUCT_CODE="a b"
        ),
        lambda: add(store, "--dimension", "users", "--quantity", "1", "--durability", "disk"),
        lambda: add(
            store, "--dimension", "users", "--quantity", "1", MARKETPLACE_METER_DURABILITY="disk"
        ),
        lambda: add(store, "--dimension", "users", "--quantity", "x", "--log-format", "json"),
    )
    assert_failed(undeclared, ExitCode.USAGE, "dimension 'cpus' is not declared for this store")
    assert_failed(negative, ExitCode.USAGE, "quantity '-1' is not a finite number of 0 or more")
    assert_failed(too_old, ExitCode.USAGE, "is not within the last 6 hours")
    assert_failed(not_a_time, ExitCode.USAGE, "--timestamp 'nan' is not a time between 1970")
    assert_failed(no_store, ExitCode.USAGE, "no meter store; pass --store or set")
    assert_failed(no_product, ExitCode.USAGE, "no product code to meter")
    assert_failed(bad_product, ExitCode.CONFIGURATION, "MARKETPLACE_PRODUCT_CODE: product code")
    assert_failed(bad_durability_flag, ExitCode.USAGE, "--durability: 'disk' is not one of")
    assert_failed(bad_durability_env, ExitCode.CONFIGURATION, "MARKETPLACE_METER_DURABILITY:")
    assert json_log.returncode == ExitCode.USAGE
    assert json.loads(json_log.last_line)["exit_code"] == ExitCode.USAGE
    assert not store.exists() or rows(store) == []  # nothing was counted


def test_meter_status_of_a_missing_store_is_a_configuration_error(store: Path) -> None:
    run = run_cli(["meter", "status"], env(store))
    assert_failed(run, ExitCode.CONFIGURATION, "does not exist")


def test_the_stricter_durability_wins_and_stays(store: Path) -> None:
    assert add(store, "--dimension", "gb", "--quantity", "1").returncode == 0
    assert status(store)["durability"] == "process"
    strict = add(
        store, "--dimension", "gb", "--quantity", "1", MARKETPLACE_METER_DURABILITY="machine"
    )
    assert strict.returncode == 0, strict.stderr
    assert (
        add(store, "--dimension", "gb", "--quantity", "1", "--durability", "process").returncode
        == 0
    )
    assert status(store)["durability"] == "machine"  # never lowered by a later opener


def test_another_product_s_store_is_refused(store: Path) -> None:
    assert add(store, "--dimension", "gb", "--quantity", "1").returncode == 0
    run = add(store, "--dimension", "gb", "--quantity", "1", MARKETPLACE_PRODUCT_CODE="prod-other")
    assert_failed(run, ExitCode.CONFIGURATION, f"belongs to product {PRODUCT}, not prod-other")


PROBE = """
import os
import sys
def _exit(code):  # the command line ends with os._exit (entrypoint.process): catch it here
    raise SystemExit(code)
os._exit = _exit
sys.argv = ["marketplace-entrypoint", "meter", "add", "--dimension", "users", "--quantity", "1"]
from entrypoint.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"botocore", "boto3", "cryptography",
    "jwt", "urllib3", "entrypoint.config", "entrypoint.keys", "entrypoint.metering"})
print(code, heavy, file=sys.stderr)
"""


def test_meter_add_imports_no_sdk_no_crypto_and_no_bootstrap_configuration(store: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE], env=env(store), capture_output=True, text=True, check=False
    )
    assert run.stderr.strip().splitlines()[-1] == "0 []", run.stderr


def test_a_shell_loop_adds_one_by_one(store: Path) -> None:
    """What a Go, Java or Node program does: call `meter add` per batch, here from sh."""
    script = (
        'for i in 1 2 3 4 5; do "$ME" meter add --dimension users --quantity 2 >/dev/null '
        "|| exit 1; done"
    )
    shell = subprocess.run(
        ["sh", "-c", script],  # noqa: S607 - the system shell, by name
        env={
            **env(store),
            "ME": str(Path(sys.executable).with_name("marketplace-entrypoint")),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert sum(r.micros for r in rows(store)) == 10_000_000
