"""``marketplace-entrypoint meter``: the installed console script, as a real process, against the
emulator over HTTP. Every outcome asserts the exit code, the one-line diagnosis, stdout, and that
no traceback was printed.

The runs are independent, so each test's runs start together on a small thread pool (the SDK
takes about half a second to import in each process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator, ProductBehavior

from .support import KEYS, Run, base_env, run_cli

PRODUCT = "prod-meter-cli"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    products = {PRODUCT: ProductBehavior(dimensions=("users", "gb", "hosts"))}
    with Emulator(products=products, key_factory=KEYS.factory) as em:
        yield em


def meter(emulator: Emulator, *args: str, **env: str | None) -> Run:
    environment = base_env(emulator, **{"MARKETPLACE_PRODUCT_CODE": PRODUCT, **env})
    return run_cli(["meter", *args], environment)


def together(*runs: Any) -> list[Run]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: call(), runs))


def assert_failed(run: Run, code: ExitCode, diagnosis: str) -> None:
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    assert diagnosis in run.last_line, run.last_line


def a_minute_ago() -> str:
    """An explicit time, so that runs a moment apart never straddle an hour boundary."""
    return str(int(time.time()) - 60)


def test_meter_prints_the_record_id_and_a_rerun_is_idempotent(emulator: Emulator) -> None:
    when = a_minute_ago()
    first = meter(emulator, "--dimension", "users", "--quantity", "12", "--timestamp", when)
    again = meter(emulator, "--dimension", "users", "--quantity", "12.000", "--timestamp", when)
    assert first.returncode == 0, first.stderr
    assert again.stdout == first.stdout
    (record,) = emulator.records(billed=True)
    assert first.stdout == f"{record.record_id}\n"
    assert record.quantity == "12"
    assert "MeterUsage recorded 12 users for " in first.stderr
    calls = emulator.calls("MeterUsage")
    assert calls[0].request["ClientToken"] == calls[1].request["ClientToken"]
    assert calls[0].request["Timestamp"] % 3600 == 0  # the hour's start


def test_meter_outcomes(emulator: Emulator) -> None:
    old = datetime.fromtimestamp(emulator.state.clock() - 7 * 3600, UTC).isoformat()
    decimal, dry_run, bad_dimension, too_old, negative, json_log, no_product = together(
        lambda: meter(emulator, "--dimension", "gb", "--quantity", "0.25"),
        lambda: meter(emulator, "--dimension", "users", "--dry-run"),
        lambda: meter(emulator, "--dimension", "cpus", "--quantity", "1"),
        lambda: meter(emulator, "--dimension", "hosts", "--quantity", "1", "--timestamp", old),
        lambda: meter(emulator, "--dimension", "hosts", "--quantity", "-1"),
        lambda: meter(
            emulator, "--dimension", "hosts", "--quantity", "abc", "--log-format", "json"
        ),
        lambda: meter(
            emulator, "--dimension", "hosts", "--quantity", "1", MARKETPLACE_PRODUCT_CODE=None
        ),
    )
    assert decimal.returncode == 0, decimal.stderr
    assert emulator.records(dimension="gb")[0].quantity == "0.25"
    assert (dry_run.returncode, dry_run.stdout) == (0, "DryRunOperation\n")
    assert_failed(bad_dimension, ExitCode.CONFIGURATION, "InvalidUsageDimensionException")
    assert_failed(
        too_old,
        ExitCode.SERVICE_ERROR,
        "usage rejected: MeterUsage refused the record: TimestampOutOfBoundsException",
    )
    assert_failed(negative, ExitCode.USAGE, "quantity '-1' is not a finite number of 0 or more")
    assert json_log.returncode == ExitCode.USAGE
    assert json.loads(json_log.last_line)["exit_code"] == ExitCode.USAGE
    assert_failed(no_product, ExitCode.USAGE, "no product code to meter")
    assert emulator.records(dimension="hosts") == []


def test_another_quantity_for_a_reported_hour_is_refused(emulator: Emulator) -> None:
    when = a_minute_ago()
    first = meter(emulator, "--dimension", "users", "--quantity", "3", "--timestamp", when)
    assert first.returncode == 0, first.stderr
    other = meter(emulator, "--dimension", "users", "--quantity", "4", "--timestamp", when)
    assert_failed(other, ExitCode.SERVICE_ERROR, "IdempotencyConflictException")
    assert "the hour was already reported with another quantity" in other.last_line
    assert len(emulator.records(billed=True)) == 1


def test_each_instance_has_its_own_client_tokens(emulator: Emulator) -> None:
    # Two tasks reporting the same hour must never share a ClientToken (the emulator stands for
    # one task, so it is the tokens, not the records, that show it).
    runs = together(
        lambda: meter(emulator, "--dimension", "users", "--quantity", "1", "--instance-id", "a"),
        lambda: meter(emulator, "--dimension", "users", "--quantity", "1", "--instance-id", "b"),
    )
    assert [r.returncode for r in runs] == [0, 0]
    tokens = {c.request["ClientToken"] for c in emulator.calls("MeterUsage")}
    assert len(tokens) == 2


def test_throttling_is_retried(emulator: Emulator) -> None:
    emulator.configure(PRODUCT, throttle=2)
    run = meter(emulator, "--dimension", "users", "--quantity", "5")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("MeterUsage (users, ") == 2  # two retry warnings
    assert [c.error for c in emulator.calls("MeterUsage")] == [
        "ThrottlingException",
        "ThrottlingException",
        None,
    ]


def test_usage_errors_before_any_call(emulator: Emulator) -> None:
    runs = together(
        lambda: meter(emulator, "--quantity", "1"),
        lambda: meter(emulator, "--dimension", "users"),
        lambda: meter(emulator, "--dimension", "users", "--quantity", "1", "--timestamp", "soon"),
    )
    assert_failed(runs[0], ExitCode.USAGE, "the following arguments are required: --dimension")
    assert_failed(runs[1], ExitCode.USAGE, "give --quantity, or --dry-run without a quantity")
    assert_failed(runs[2], ExitCode.USAGE, "--timestamp 'soon' is not an ISO 8601 time")
    assert emulator.calls() == []


@pytest.mark.parametrize("timestamp", ["nan", "inf", "-inf", "1e20", "-5", "NaN"])
def test_a_timestamp_that_is_not_a_time_is_a_usage_error(
    emulator: Emulator, timestamp: str
) -> None:
    """Issue 11: these exited 70 with a traceback (hour_start(nan) raised ValueError)."""
    run = meter(emulator, "--dimension", "users", "--quantity", "1", f"--timestamp={timestamp}")
    assert_failed(run, ExitCode.USAGE, f"--timestamp '{timestamp}' is not a time between 1970")
    assert emulator.calls() == []


def test_an_iso_timestamp_out_of_range_is_a_usage_error(emulator: Emulator) -> None:
    run = meter(
        emulator,
        "--dimension",
        "users",
        "--quantity",
        "1",
        "--timestamp",
        "9999-12-31T23:59:59-01:00",
    )
    assert_failed(run, ExitCode.USAGE, "is not a time between 1970 and 9999")
