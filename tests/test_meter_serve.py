"""``meter serve`` as a sidecar: the installed console script as a real process, real time, the
emulator over HTTP, other processes adding to the same store with ``meter add`` or a `Meter`.

SIGTERM is how ECS and Kubernetes stop a sidecar: it sends what is due, the current hour too when
no other process of the task is still metering, and exits 0; a second signal ends it at once."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.answers import MeterUsageAnswer
from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.meter.hours import hour_start, seconds_to_next_hour

from .meter_support import child_env, rows, sends
from .support import CONSOLE_SCRIPT, KEYS, base_env, run_cli

PRODUCT = "prod-serve"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    products = {PRODUCT: ProductBehavior(dimensions=("users", "gb"))}
    with Emulator(products=products, key_factory=KEYS.factory) as em:
        yield em


def task_env(emulator: Emulator, store: Path, **extra: str) -> dict[str, str]:
    return {
        **base_env(emulator),
        **child_env(),
        "MARKETPLACE_PRODUCT_CODE": PRODUCT,
        "MARKETPLACE_METER_STORE": str(store),
        "MARKETPLACE_METER_DIMENSIONS": "users,gb",
        **extra,
    }


class Serve:
    """A running ``meter serve`` whose log lines are collected as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "meter", "serve", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            self.lines.extend(self.process.stderr)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in:\n{''.join(self.lines)}"
            time.sleep(0.02)

    def stop(self, *signals: int, gap: float = 0.5, timeout: float = 60) -> int:
        for n, signum in enumerate(signals):
            if n:
                time.sleep(gap)
            self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)


def add(env: dict[str, str], dimension: str, quantity: str, *extra: str) -> None:
    run = run_cli(["meter", "add", "--dimension", dimension, "--quantity", quantity, *extra], env)
    assert run.returncode == 0, run.stderr


def test_serve_sends_ended_hours_and_the_current_one_at_sigterm(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = task_env(emulator, tmp_path / "volume" / "usage.db")
    two_hours_ago = hour_start(time.time()) - 2 * 3600
    add(env, "users", "3", "--timestamp", str(two_hours_ago + 60))
    serve = Serve(env)
    serve.wait_for("meter serve: sending product prod-serve's usage (gb, users)")
    serve.wait_for("MeterUsage recorded 3 users")  # an ended hour: sent while running
    add(env, "gb", "1.5")
    add(env, "gb", "1")
    assert serve.stop(signal.SIGTERM) == 0, serve.log
    assert re.search(r"meter serve stopped: [12] record\(s\) sent at shutdown", serve.log)
    assert "Traceback" not in serve.log
    totals: dict[str, Decimal] = {}
    for record in emulator.records(billed=True):  # gb: two records if an hour ended in between
        totals[record.dimension] = totals.get(record.dimension, Decimal(0)) + Decimal(
            record.quantity
        )
    assert totals == {"users": Decimal(3), "gb": Decimal("2.5")}
    dry_runs = [
        c.request["UsageDimension"] for c in emulator.calls("MeterUsage") if c.request.get("DryRun")
    ]
    assert sorted(dry_runs) == ["gb", "users"]  # the preflight, before anything was sent
    assert {r.state for r in rows(tmp_path / "volume" / "usage.db")} == {"sent"}


METER = """
import sys
from entrypoint.meter import Meter
from tests.meter_support import Client
meter = Meter(product_code="prod-serve", dimensions=["users", "gb"], state_file=sys.argv[1],
    client=Client(sys.argv[2])).start(preflight=False)
meter.add("users", 4)
print("added", flush=True)
sys.stdin.readline()
report = meter.close()
print("closed", [(s.dimension, str(s.quantity)) for s in report.sent], flush=True)
"""


def test_serve_leaves_the_current_hour_to_a_process_still_metering(
    emulator: Emulator, tmp_path: Path
) -> None:
    left = seconds_to_next_hour(time.time())
    if left < 30:  # the test needs the current hour to stay current for a few seconds
        time.sleep(left + 1)
    store = tmp_path / "volume" / "usage.db"
    env = task_env(emulator, store)
    serve = Serve(env)
    serve.wait_for("meter serve: sending")
    with subprocess.Popen(
        [sys.executable, "-c", METER, str(store), emulator.url],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as product:
        assert product.stdin is not None
        assert product.stdout is not None
        assert product.stdout.readline().strip() == "added"
        assert serve.stop(signal.SIGTERM) == 0, serve.log
        assert sends(emulator) == []  # the product's Meter is alive: its hour is still open
        product.stdin.write("\n")
        product.stdin.flush()
        assert product.stdout.readline().strip() == "closed [('users', '4')]"
    assert [(r.dimension, r.quantity) for r in emulator.records(billed=True)] == [("users", "4")]


def test_a_started_meter_counts_as_alive_before_its_sender_thread_runs(tmp_path: Path) -> None:
    """The race behind the test above: a sidecar that stops between a product's `start()` and its
    sender thread's first step must still see the product and leave its hour open. The thread's
    clock is held back here until the check is done, so it cannot have claimed anything."""
    from entrypoint.meter import Meter
    from entrypoint.meter.opening import open_store

    released = threading.Event()
    main = threading.main_thread()

    def clock() -> float:
        if threading.current_thread() is not main:
            released.wait(30)
        return time.time()

    store = tmp_path / "usage.db"
    meter = Meter(
        product_code="prod-serve",
        dimensions=["users"],
        state_file=store,
        client=NoSends(),
        clock=clock,
    ).start(preflight=False)
    try:
        reader = open_store(store, product_code="prod-serve", dimensions=["users"], shard=False)
        try:
            assert [m.kind for m in reader.members(time.time())] == ["meter"]
        finally:
            reader.close()
    finally:
        released.set()
        meter.close()


class NoSends:
    """A MeterUsage client the test never lets the meter call."""

    def meter_usage(self, **_: object) -> MeterUsageAnswer:
        raise AssertionError("the meter sent usage")


def test_serve_refuses_an_unknown_dimension_at_start(emulator: Emulator, tmp_path: Path) -> None:
    env = task_env(emulator, tmp_path / "usage.db", MARKETPLACE_METER_DIMENSIONS="users,cpus")
    run = run_cli(["meter", "serve"], env)
    assert run.returncode == ExitCode.CONFIGURATION, run.stderr
    assert "InvalidUsageDimensionException" in run.last_line
    assert "Traceback" not in run.stderr


def test_serve_without_a_store_is_a_usage_error(emulator: Emulator, tmp_path: Path) -> None:
    env = task_env(emulator, tmp_path / "usage.db")
    del env["MARKETPLACE_METER_STORE"]
    run = run_cli(["meter", "serve"], env)
    assert run.returncode == ExitCode.USAGE, run.stderr
    assert "no meter store" in run.last_line


def test_usage_that_cannot_be_sent_at_shutdown_exits_75_and_stays(
    emulator: Emulator, tmp_path: Path
) -> None:
    store = tmp_path / "usage.db"
    env = task_env(emulator, store)
    serve = Serve(env, "--shutdown-deadline", "1")
    serve.wait_for("meter serve: sending")
    add(env, "users", "5")
    emulator.configure(PRODUCT, throttle=1_000_000)
    assert serve.stop(signal.SIGTERM) == ExitCode.RETRIES_EXHAUSTED, serve.log
    assert "1 hour(s) of due usage could not be sent before shutdown" in serve.lines[-1]
    assert [(r.dimension, r.micros, r.state) for r in rows(store)] == [
        ("users", 5_000_000, "sealed")
    ]


def test_a_second_signal_stops_serve_at_once(emulator: Emulator, tmp_path: Path) -> None:
    env = task_env(emulator, tmp_path / "usage.db")
    serve = Serve(env, "--shutdown-deadline", "60")
    serve.wait_for("meter serve: sending")
    add(env, "users", "5")
    emulator.configure(PRODUCT, throttle=1_000_000)
    began = time.monotonic()
    code = serve.stop(signal.SIGTERM, signal.SIGTERM, gap=1.0)
    assert code == 128 + signal.SIGTERM, serve.log
    assert time.monotonic() - began < 15
    assert "interrupted: received SIGTERM while reporting usage" in serve.lines[-1]
