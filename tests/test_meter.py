"""The in-process `Meter` against the emulator over HTTP, with time injected, across crashes and
restarts within and across hour boundaries.

The meter and the emulator share one `FakeClock`; nothing sleeps to cross an hour. A "crash" is
what happens when a process dies: its connection to the store goes away, nothing is flushed, and
its sender lease lapses (`crash` moves the clock past it); a crash in the middle of a send is a
`SimulatedCrash` raised by the client right after the emulator answered, or right before the
request left. Real processes killed with SIGKILL are in tests/test_meter_processes.py. The
emulator's records are the proof: what it billed, and that nothing was billed twice or refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ConfigurationError, ExitCode, NotEntitledError, UsageError
from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.meter import FlushReport, Meter, meter_dry_run
from entrypoint.meter.hours import client_token, seconds_to_next_hour
from entrypoint.retry import Backoff

from .meter_support import (
    Client,
    SimulatedCrash,
    assert_never_refused,
    billed,
    child_env,
    rows,
    sends,
)
from .support import HOUR, KEYS, T0, FakeClock, metering_client

PRODUCT = "prod-meter"
H10 = T0 - 30 * 60  # 2026-11-21T10:00Z; T0 is 10:30
LEASE = 2.0  # the meters' sender lease here: a crash moves the clock past it


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[Emulator]:
    products = {PRODUCT: ProductBehavior(dimensions=("users", "gb"))}
    with Emulator(products=products, key_factory=KEYS.factory, clock=clock) as em:
        yield em


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "meter.json"


def new_meter(
    emulator: Emulator,
    clock: FakeClock,
    state: Path,
    client: Client | None = None,
    **options: Any,
) -> Meter:
    return Meter(
        product_code=PRODUCT,
        dimensions=options.pop("dimensions", ("users", "gb")),
        state_file=state,
        client=client or Client(emulator),
        clock=clock,
        monotonic=clock,
        sleep=clock.sleep,
        uniform=options.pop("uniform", lambda _lo, hi: hi),
        backoff=Backoff(base=0.01, cap=0.05),
        lease_seconds=options.pop("lease_seconds", LEASE),
        **options,
    )


def started(emulator: Emulator, clock: FakeClock, state: Path, **options: Any) -> Meter:
    return new_meter(emulator, clock, state, **options).start(background=False)


def crash(meter: Meter, clock: FakeClock) -> None:
    """The process died: its connection is gone (the kernel drops its locks), nothing was
    flushed, it never left the store, and its lease lapses (the clock moves past it)."""
    meter.store.close()
    clock.advance(LEASE + 0.5)


def kill_when(script: str, line: str, *args: str) -> None:
    """Run ``script`` in a real process and SIGKILL it once it prints ``line``."""
    with subprocess.Popen(
        [sys.executable, "-c", script, *args], env=child_env(), stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == line
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL


# -- one record per dimension per hour ------------------------------------------------------------


def test_usage_is_summed_per_dimension_and_sent_once_the_hour_ends(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    clock.advance(10 * 60)
    meter.add("users", 4)
    meter.add("gb", "1.5")
    assert meter.send_due().sent == ()  # 10:40: the hour has not ended
    clock.set(H10 + HOUR + 30)
    report = meter.send_due()
    assert [(s.dimension, s.quantity) for s in report.sent] == [
        ("gb", Decimal("1.5")),
        ("users", Decimal(7)),
    ]
    assert billed(emulator) == [("gb", H10, "1.5"), ("users", H10, "7")]
    calls = sends(emulator)
    assert [c.request["Timestamp"] for c in calls] == [H10, H10]  # the hour's start
    assert [c.request["UsageQuantityAsDecimal"] for c in calls] == ["1.5", "7"]
    assert meter.send_due().sent == ()  # nothing left
    meter.close()


def test_client_tokens_are_derived_from_task_product_dimension_and_hour(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 1)
    instance = meter.store.instance_id
    meter.close()
    (call,) = sends(emulator)
    assert call.request["ClientToken"] == client_token(instance, PRODUCT, "users", int(H10))


def test_shutdown_flushes_the_current_hour(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    with new_meter(emulator, clock, state).start(background=False) as meter:
        meter.add("users", 2)
    assert billed(emulator) == [("users", H10, "2")]
    assert [r.state for r in rows(state)] == ["sent"]


def test_decimal_usage_adds_up_exactly(emulator: Emulator, clock: FakeClock, state: Path) -> None:
    with started(emulator, clock, state) as meter:
        for _ in range(3):
            meter.add("gb", 0.1)
    assert billed(emulator) == [("gb", H10, "0.3")]


# -- crashes and restarts -------------------------------------------------------------------------


def test_a_crash_within_the_hour_loses_nothing(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)
    crash(first, clock)
    clock.advance(15 * 60)  # 10:45
    second = started(emulator, clock, state)
    second.add("users", 2)
    clock.set(H10 + HOUR + 60)
    second.send_due()
    assert billed(emulator) == [("users", H10, "5")]
    assert_never_refused(emulator)


def test_a_crash_after_aws_recorded_the_hour_does_not_bill_it_twice(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    client = Client(emulator)
    first = new_meter(emulator, clock, state, client).start(background=False)
    first.add("users", 3)
    clock.set(H10 + HOUR + 60)
    client.crash_after = client.calls + 1  # AWS records it, the answer never arrives
    with pytest.raises(SimulatedCrash):
        first.send_due()
    crash(first, clock)
    assert len(emulator.records(billed=True)) == 1
    clock.advance(5 * 60)
    second = started(emulator, clock, state)  # start() sends what is due
    records = emulator.records()
    assert [(r.status, r.billed) for r in records] == [("Success", True), ("Success", False)]
    assert records[1].record_id == records[0].record_id  # the same record, answered again
    assert second.pending() == []
    second.close()


def test_a_crash_before_the_request_left_sends_it_after_the_restart(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    client = Client(emulator)
    first = new_meter(emulator, clock, state, client).start(background=False)
    first.add("users", 3)
    clock.set(H10 + HOUR + 60)
    client.crash_before = client.calls + 1
    with pytest.raises(SimulatedCrash):
        first.send_due()
    crash(first, clock)
    assert [r.state for r in rows(state)] == ["sealed"]  # frozen before the first attempt
    started(emulator, clock, state).close()
    assert billed(emulator) == [("users", H10, "3")]


def test_a_restart_hours_later_sends_every_hour_that_ended(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)  # 10:30
    clock.set(H10 + HOUR + 20 * 60)  # 11:20
    first.add("users", 4)
    crash(first, clock)
    clock.set(H10 + 3 * HOUR + 30 * 60)  # restarted at 13:30
    second = started(emulator, clock, state)
    assert billed(emulator) == [("users", H10, "3"), ("users", H10 + HOUR, "4")]
    second.add("users", 5)
    second.close()
    assert billed(emulator)[-1] == ("users", H10 + 3 * HOUR, "5")
    assert_never_refused(emulator)


def test_usage_after_a_restart_in_a_reported_hour_moves_to_the_next_hour(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    with started(emulator, clock, state) as first:
        first.add("users", 3)  # 10:30, flushed on shutdown
    clock.advance(10 * 60)  # restarted at 10:40, in the hour already reported
    second = started(emulator, clock, state)
    assert second.add("users", 2) == datetime.fromtimestamp(H10 + HOUR, UTC)
    clock.set(H10 + HOUR + 30 * 60)  # 11:30: the 11:00 hour has not ended
    assert second.send_due().sent == ()
    clock.set(H10 + 2 * HOUR + 60)
    second.send_due()
    assert billed(emulator) == [("users", H10, "3"), ("users", H10 + HOUR, "2")]
    assert_never_refused(emulator)
    second.close()


def test_a_restart_within_six_hours_still_reports_the_hour(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)
    crash(first, clock)
    clock.set(H10 + 6 * HOUR)
    started(emulator, clock, state).close()
    assert billed(emulator)[0] == ("users", H10, "3")


def test_usage_left_unreported_for_over_six_hours_is_reported_lost(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)
    crash(first, clock)
    clock.set(H10 + 6 * HOUR + 1)
    second = new_meter(emulator, clock, state).start(background=False)
    (lost,) = second.start_report.failed
    second.close()
    assert billed(emulator) == []
    assert lost.dropped
    assert lost.error.code == "TimestampOutOfBoundsException"  # type: ignore[attr-defined]


def test_a_killed_process_loses_nothing_and_leaves_no_lock(emulator: Emulator, state: Path) -> None:
    """A real process, killed with SIGKILL after add() returned while it held the sender's
    lease: real time, real kernel. The lease lapses; the next meter takes over and sends."""
    emulator.state.clock = time.time
    kill_when(CHILD, "added", emulator.url, str(state))
    restarted = Meter(
        product_code=PRODUCT,
        dimensions=("users",),
        state_file=state,
        client=Client(emulator),
        lease_seconds=0.5,
    )
    time.sleep(0.6)  # the killed holder's lease lapses
    restarted.start(preflight=False, background=False).close()
    records = emulator.records(billed=True)  # one record, or two if an hour ended in between
    assert sum(Decimal(r.quantity) for r in records) == 42
    assert_never_refused(emulator)


CHILD = """
import sys, time
from entrypoint.meter import Meter
from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY
from entrypoint.metering import BotocoreMeteringClient, StaticCredentials
client = BotocoreMeteringClient(region="us-east-1", endpoint_url=sys.argv[1],
    credentials=StaticCredentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY))
meter = Meter(product_code="prod-meter", dimensions=["users"], state_file=sys.argv[2],
    client=client, lease_seconds=0.5).start(preflight=False, background=False)
meter.add("users", 40)
meter.add("users", 2)
print("added", flush=True)
time.sleep(60)
"""


# -- failures -------------------------------------------------------------------------------------


def test_throttling_is_retried_with_the_same_request(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    emulator.configure(PRODUCT, throttle=2, server_errors=1)
    clock.set(H10 + HOUR + 60)
    assert [s.quantity for s in meter.send_due().sent] == [3]
    calls = sends(emulator)
    assert [c.error for c in calls] == [
        "ThrottlingException",
        "ThrottlingException",
        "InternalServiceErrorException",
        None,
    ]
    assert len({json.dumps(dict(c.request), sort_keys=True) for c in calls}) == 1
    assert len(clock.sleeps) == 3
    meter.close()


def test_retries_that_outlast_the_deadline_keep_the_usage(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state, send_deadline=1.0)
    meter.add("users", 3)
    emulator.configure(PRODUCT, throttle=10_000)
    clock.set(H10 + HOUR + 60)
    (failure,) = meter.send_due().failed
    assert not failure.dropped
    assert failure.error.exit_code == ExitCode.RETRIES_EXHAUSTED
    assert "MeterUsage (users, 2026-11-21T10:00Z) did not succeed" in failure.error.reason
    emulator.configure(PRODUCT, throttle=0)
    assert [s.quantity for s in meter.send_due().sent] == [3]


def test_a_record_aws_refuses_for_good_is_kept_as_lost_and_reported(
    emulator: Emulator, clock: FakeClock, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Changed on purpose (CHANGELOG): the refused bucket is no longer deleted. It is not sent
    again (dropped), and stays in the store as refused, listed by lost(), logged as an error."""
    metering_client(emulator).meter_usage(  # another sender already reported this hour
        ProductCode=PRODUCT, Timestamp=H10, UsageDimension="users", UsageQuantity=9
    )
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    clock.set(H10 + HOUR + 60)
    (failure,) = meter.send_due().failed
    assert failure.dropped
    assert failure.error.code == "DuplicateRequestException"  # type: ignore[attr-defined]
    assert failure.error.exit_code == ExitCode.SERVICE_ERROR
    assert meter.pending() == []
    ((dimension, hour, quantity, why),) = meter.lost()
    assert (dimension, hour.timestamp(), quantity) == ("users", H10, Decimal(3))
    assert why.startswith("DuplicateRequestException: ")
    assert [r.state for r in rows(state)] == ["refused"]
    assert "kept in the store as refused" in caplog.text
    assert meter.send_due().failed == ()  # never sent again
    meter.close()
    assert len(sends(emulator)) == 2  # the other sender's, and ours once


def test_a_configuration_error_keeps_the_usage_until_it_is_fixed(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    emulator.configure(PRODUCT, outcome="not-entitled")
    clock.set(H10 + HOUR + 60)
    (failure,) = meter.send_due().failed
    assert isinstance(failure.error, NotEntitledError)
    assert not failure.dropped
    emulator.configure(PRODUCT, outcome="entitled")
    assert [s.quantity for s in meter.send_due().sent] == [3]
    meter.close()


# -- start-up --------------------------------------------------------------------------------------


def test_preflight_runs_a_dry_run_per_dimension_and_records_nothing(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    started(emulator, clock, state).close()
    dry_runs = [c for c in emulator.calls("MeterUsage") if c.request.get("DryRun")]
    assert [(c.request["UsageDimension"], c.error) for c in dry_runs] == [
        ("users", "DryRunOperation"),
        ("gb", "DryRunOperation"),
    ]
    assert emulator.records() == []


def test_preflight_refuses_an_unknown_dimension_and_lets_go_of_the_state_file(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = new_meter(emulator, clock, state, dimensions=("users", "cpus"))
    with pytest.raises(ConfigurationError, match="InvalidUsageDimensionException") as caught:
        meter.start(background=False)
    assert caught.value.exit_code == ExitCode.CONFIGURATION
    started(emulator, clock, state).close()  # the lock was released


def test_preflight_refuses_a_buyer_without_subscription(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    emulator.configure(PRODUCT, outcome="not-entitled")
    with pytest.raises(NotEntitledError) as caught:
        new_meter(emulator, clock, state).start(background=False)
    assert caught.value.exit_code == ExitCode.NOT_ENTITLED


def test_meter_dry_run_is_the_check_hook(emulator: Emulator, clock: FakeClock) -> None:
    result = meter_dry_run(
        product_code=PRODUCT, dimension="users", client=Client(emulator), wall_clock=clock
    )
    assert (result.product_code, result.dimension, result.attempts) == (PRODUCT, "users", 1)
    with pytest.raises(ConfigurationError, match="InvalidProductCodeException"):
        meter_dry_run(
            product_code="prod-nope", dimension="users", client=Client(emulator), wall_clock=clock
        )


def test_two_meters_on_one_store_share_one_book(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    """Changed on purpose (CHANGELOG): a second meter on the same file was refused ("in use by
    another process"); now every process of a task shares the store, and one of them sends."""
    first = started(emulator, clock, state, lease_seconds=3 * HOUR)  # outlives the jumps here
    second = started(emulator, clock, state, lease_seconds=3 * HOUR)
    first.add("users", 3)
    second.add("users", 4)
    second.add("gb", "0.5")
    assert [(d, q) for d, _, q in first.pending()] == [("gb", Decimal("0.5")), ("users", 7)]
    clock.set(H10 + HOUR + 60)
    assert [(s.dimension, s.quantity) for s in first.send_due().sent] == [
        ("gb", Decimal("0.5")),
        ("users", 7),
    ]
    second.add("users", 1)  # the hour was sent: carried into the next one
    clock.set(H10 + 2 * HOUR + 60)
    report = second.send_due()
    assert (report.sent, report.sender) == ((), first._sender.id)  # type: ignore[union-attr]
    closing = first.close()  # sends what is due, releases the lease
    assert [(s.dimension, s.quantity) for s in closing.sent] == [("users", Decimal(1))]
    second.add("gb", 2)
    clock.set(H10 + 3 * HOUR + 60)
    assert [(s.dimension, s.quantity) for s in second.send_due().sent] == [("gb", Decimal(2))]
    second.close()
    assert billed(emulator) == [
        ("gb", H10, "0.5"),
        ("users", H10, "7"),
        ("users", H10 + HOUR, "1"),
        ("gb", H10 + 2 * HOUR, "2"),
    ]
    assert_never_refused(emulator)


def test_a_state_file_of_another_product_is_refused(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    started(emulator, clock, state).close()
    emulator.configure("prod-other")
    other = Meter(
        product_code="prod-other", dimensions=("users",), state_file=state, client=Client(emulator)
    )
    with pytest.raises(ConfigurationError, match="belongs to product prod-meter"):
        other.start(preflight=False, background=False)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "is not JSON"),
        (b'{"format": "something-else"}', "is not a meter state file"),
        (b'{"format": "marketplace-entrypoint-meter", "version": 9}', "has version 9"),
        (b'{"format": "marketplace-entrypoint-meter", "version": 1}', "is damaged"),
        (b"", "is damaged: it is an SQLite database, but not a meter store"),
        (b"garbage that is no database" * 100, "is damaged: file is not a database"),
        (b"SQLite format 3\x00" + b"\x00" * 84, "is damaged"),
    ],
    ids=["not-json", "other-format", "version", "no-buckets", "empty", "garbage", "header"],
)
def test_a_damaged_state_file_is_refused_never_discarded(
    emulator: Emulator, clock: FakeClock, state: Path, content: bytes, reason: str
) -> None:
    state.write_bytes(content)
    with pytest.raises(ConfigurationError, match=reason) as caught:
        started(emulator, clock, state)
    assert "holds usage not yet reported" in caught.value.diagnosis()
    assert state.read_bytes() == content


# -- durability -----------------------------------------------------------------------------------


def test_add_is_on_disk_when_it_returns(emulator: Emulator, clock: FakeClock, state: Path) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    # Another connection (another process's view) sees it committed.
    assert rows(state) == [("users", H10, 3_000_000, "open")]
    meter.close()


def test_a_transaction_cut_short_leaves_the_store_whole(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    """A real process killed with SIGKILL in the middle of a write (inside BEGIN IMMEDIATE,
    holding the writers' lock): nothing of it remains, and the lock is free at once."""
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    kill_when(HALF_WRITE, "inside", str(state))
    assert meter.add("users", 2).timestamp() == H10  # the lock was released by the kernel
    assert rows(state) == [("users", H10, 5_000_000, "open")]
    meter.close()


HALF_WRITE = """
import fcntl, sys, time
from entrypoint.meter.opening import open_store
store = open_store(sys.argv[1], product_code="prod-meter")
fcntl.flock(store._lock_fd, fcntl.LOCK_EX)
db = store._db
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE buckets SET micros = micros + 7000000, negated = negated - 7000000")
print("inside", flush=True)
time.sleep(60)
"""


def test_an_add_that_could_not_be_saved_is_not_counted(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    """A real process whose writes fail (RLIMIT_FSIZE: the file system says the file is too
    big, as a full volume would): the add raises, counts nothing, and the same add once the
    volume has room again is counted once."""
    started(emulator, clock, state).close()
    run = subprocess.run(
        [sys.executable, "-c", NO_ROOM, str(state), str(clock())],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("refused: configuration error: the meter store "), lines
    assert "cannot be used" in lines[0]
    (before,) = [int(line.split()[-1]) for line in lines[1:] if line.startswith("added after")]
    total = 1 + (before + 1) * 4000
    clock.advance(2)  # the child's lease lapses
    meter = started(emulator, clock, state)
    assert [(d, q) for d, _, q in meter.pending()] == [("users", Decimal(total))]
    meter.close()
    assert billed(emulator) == [("users", H10, str(total))]


NO_ROOM = """
import resource, signal, sys
from entrypoint import ConfigurationError
from entrypoint.meter import Meter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as on a full volume
now = float(sys.argv[2])
meter = Meter(product_code="prod-meter", dimensions=["users"], state_file=sys.argv[1],
    clock=lambda: now, client=object(), lease_seconds=1).start(preflight=False, background=False)
meter.add("users", 1)
wal = sys.argv[1] + "-wal"
import os
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.stat(wal).st_size, hard))
succeeded = 0
try:
    for _ in range(2000):
        meter.add("users", 4000)
        succeeded += 1
except ConfigurationError as error:
    print("refused:", error.diagnosis(), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
counted = sum(q for _, _, q in meter.pending())
meter.add("users", 4000)  # added again, counted once
assert sum(q for _, _, q in meter.pending()) == counted + 4000
print("added after", succeeded, flush=True)
"""


def test_persist_interval_is_gone_because_every_add_is_durable(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    """Removed on purpose (CHANGELOG): `persist_interval` traded durability for speed; an add
    to the store is both durable and fast, so the option is gone."""
    with pytest.raises(TypeError, match="persist_interval"):
        new_meter(emulator, clock, state, persist_interval=5.0)
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    assert rows(state) == [("users", H10, 3_000_000, "open")]  # a crash now would lose nothing
    meter.close()
    assert billed(emulator) == [("users", H10, "3")]


def test_add_refuses_what_meter_usage_cannot_carry(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    with pytest.raises(UsageError, match="not one of this meter's: users, gb"):
        meter.add("cpus", 1)
    with pytest.raises(UsageError, match="more than 6 decimal places"):
        meter.add("users", Decimal("0.0000001"))
    with pytest.raises(UsageError, match="not within the last 6 hours"):
        meter.add("users", 1, at=T0 + 1)
    with pytest.raises(UsageError, match="has no time zone"):
        meter.add("users", 1, at=datetime(2026, 11, 21, 10, 0))  # noqa: DTZ001 - the point
    with pytest.raises(UsageError, match="not within the last 6 hours"):
        meter.add("users", 1, at=datetime.fromtimestamp(T0 - 6 * HOUR - 1, UTC))
    assert meter.add("users", 1, at=T0 - 2 * HOUR) == datetime.fromtimestamp(H10 - 2 * HOUR, UTC)
    meter.close()
    with pytest.raises(UsageError, match="not started"):
        meter.add("users", 1)


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (float("nan"), "usage time 'nan' is not a time in epoch seconds"),
        (float("inf"), "usage time 'inf' is not a time in epoch seconds"),
        (-float("inf"), "usage time '-inf' is not a time in epoch seconds"),
        (1e20, "usage time '1e\\+20' is not a time in epoch seconds"),
        (-1, "usage time '-1' is not a time in epoch seconds"),
        (10**400, "is not a time in epoch seconds"),
        (Decimal("NaN"), "usage time 'NaN' is not a time"),
        (Decimal("sNaN"), "usage time 'sNaN' is not a time"),
        (True, "usage time of type bool is not a time"),
        ("2026-11-21T10:00Z", "usage time of type str is not a time"),
    ],
    ids=["nan", "inf", "-inf", "1e20", "negative", "huge", "decimal-nan", "snan", "bool", "str"],
)
def test_add_refuses_times_that_are_not_times(
    emulator: Emulator, clock: FakeClock, state: Path, at: Any, reason: str
) -> None:
    """Issue 11: add(at=nan) raised a raw ValueError; every such time is a UsageError now."""
    meter = started(emulator, clock, state)
    with pytest.raises(UsageError, match=reason):
        meter.add("users", 1, at=at)
    assert meter.pending() == []
    meter.close()


def test_the_background_sender_sends_what_a_previous_run_left_without_blocking_start(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)
    crash(first, clock)
    clock.set(H10 + HOUR + 60)
    meter = new_meter(emulator, clock, state)
    meter.start()  # background: the sender thread sends the ended hour first thing
    assert meter.start_report == FlushReport()
    deadline = time.monotonic() + 10
    while not emulator.records() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert billed(emulator) == [("users", H10, "3")]
    meter.close()


def test_the_sender_wakes_when_the_hour_ends() -> None:
    assert seconds_to_next_hour(H10) == HOUR
    assert seconds_to_next_hour(T0) == 30 * 60
    assert seconds_to_next_hour(H10 + HOUR - 0.25) == 0.25


def test_no_state_file_is_written_with_loose_permissions(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 1)
    for name in ("", "-wal", "-shm", "-lock"):
        assert state.with_name(state.name + name).stat().st_mode & 0o077 == 0, name
    meter.close()
