"""The in-process `Meter` against the emulator over HTTP, with time injected, across crashes and
restarts within and across hour boundaries.

The meter and the emulator share one `FakeClock`; nothing sleeps to cross an hour. A "crash" is
what the kernel does when a process dies: the state file's lock is released and nothing else
happens (no flush, no save); a crash in the middle of a send is a `SimulatedCrash` raised by the
client right after the emulator answered, or right before the request left. The emulator's
records are the proof: what it billed, and that nothing was billed twice or refused.
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

import botocore.session
import pytest

from entrypoint import ConfigurationError, ExitCode, NotEntitledError, UsageError
from entrypoint.answers import MeterUsageAnswer
from entrypoint.emulator import (
    EMULATOR_ACCESS_KEY_ID,
    EMULATOR_SECRET_ACCESS_KEY,
    Emulator,
    ProductBehavior,
)
from entrypoint.meter import FlushReport, Meter, meter_dry_run
from entrypoint.meter.hours import client_token, seconds_to_next_hour
from entrypoint.metering import BotocoreMeteringClient, StaticCredentials
from entrypoint.retry import Backoff

from .support import HOUR, KEYS, T0, FakeClock, metering_client

PRODUCT = "prod-meter"
H10 = T0 - 30 * 60  # 2026-11-21T10:00Z; T0 is 10:30


class SimulatedCrash(BaseException):
    """The process died here (a BaseException, so nothing in the meter can catch it)."""


_SESSION = botocore.session.get_session()  # shared: a session costs ~50 ms to make


class Client:
    """The real botocore client, with an optional crash before or after the N-th MeterUsage."""

    def __init__(self, emulator: Emulator) -> None:
        self.inner = BotocoreMeteringClient(
            region=emulator.region,
            endpoint_url=emulator.url,
            credentials=StaticCredentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY),
            session=_SESSION,
        )
        self.calls = 0
        self.crash_before: int | None = None
        self.crash_after: int | None = None

    def meter_usage(self, **params: Any) -> MeterUsageAnswer:
        self.calls += 1
        if self.calls == self.crash_before:
            raise SimulatedCrash
        answer = self.inner.meter_usage(**params)
        if self.calls == self.crash_after:
            raise SimulatedCrash
        return answer


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
        **options,
    )


def started(emulator: Emulator, clock: FakeClock, state: Path, **options: Any) -> Meter:
    return new_meter(emulator, clock, state, **options).start(background=False)


def crash(meter: Meter) -> None:
    """The process died: the kernel drops its flock; nothing is flushed or saved."""
    meter.store.release()


def billed(emulator: Emulator) -> list[tuple[str, float, str]]:
    """(dimension, hour, quantity) of every record the emulator billed, in order."""
    return [(r.dimension, r.hour, r.quantity) for r in emulator.records(billed=True)]


def sends(emulator: Emulator) -> list[Any]:
    """The MeterUsage calls that were not DryRuns."""
    return [c for c in emulator.calls("MeterUsage") if not c.request.get("DryRun")]


def assert_never_refused(emulator: Emulator) -> None:
    assert {r.status for r in emulator.records()} <= {"Success"}, emulator.records()


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
    meter.close()
    instance = json.loads(state.read_text())["instance_id"]
    (call,) = sends(emulator)
    assert call.request["ClientToken"] == client_token(instance, PRODUCT, "users", int(H10))


def test_shutdown_flushes_the_current_hour(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    with new_meter(emulator, clock, state).start(background=False) as meter:
        meter.add("users", 2)
    assert billed(emulator) == [("users", H10, "2")]
    assert json.loads(state.read_text())["buckets"][0]["state"] == "sent"


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
    crash(first)
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
    crash(first)
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
    crash(first)
    assert json.loads(state.read_text())["buckets"][0]["state"] == "sealed"  # saved first
    started(emulator, clock, state).close()
    assert billed(emulator) == [("users", H10, "3")]


def test_a_restart_hours_later_sends_every_hour_that_ended(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)  # 10:30
    clock.set(H10 + HOUR + 20 * 60)  # 11:20
    first.add("users", 4)
    crash(first)
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
    crash(first)
    clock.set(H10 + 6 * HOUR)
    started(emulator, clock, state).close()
    assert billed(emulator)[0] == ("users", H10, "3")


def test_usage_left_unreported_for_over_six_hours_is_reported_lost(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)
    crash(first)
    clock.set(H10 + 6 * HOUR + 1)
    second = new_meter(emulator, clock, state).start(background=False)
    (lost,) = second.start_report.failed
    second.close()
    assert billed(emulator) == []
    assert lost.dropped
    assert lost.error.code == "TimestampOutOfBoundsException"  # type: ignore[attr-defined]


def test_a_killed_process_loses_nothing_and_leaves_no_lock(emulator: Emulator, state: Path) -> None:
    """A real process, killed with SIGKILL after add() returned: real time, real kernel."""
    emulator.state.clock = time.time
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, emulator.url, str(state)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "added"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    restarted = Meter(
        product_code=PRODUCT,
        dimensions=("users",),
        state_file=state,
        client=Client(emulator),
    ).start(preflight=False, background=False)
    restarted.close()
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
    client=client).start(preflight=False, background=False)
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


def test_a_record_aws_refuses_for_good_is_dropped_and_reported(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
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
    meter.close()


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


def test_one_meter_per_state_file(emulator: Emulator, clock: FakeClock, state: Path) -> None:
    meter = started(emulator, clock, state)
    with pytest.raises(ConfigurationError, match="in use by another process"):
        started(emulator, clock, state)
    meter.close()


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
    ],
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
    (bucket,) = json.loads(state.read_text())["buckets"]
    assert (bucket["dimension"], bucket["quantity"], bucket["state"]) == ("users", "3", "open")
    meter.close()


def test_a_save_cut_short_before_the_rename_leaves_the_last_state_whole(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state)
    meter.add("users", 3)
    crash(meter)
    before = state.read_bytes()
    state.with_name(f".{state.name}.tmp").write_bytes(b'{"half a')  # the crashed save
    restarted = started(emulator, clock, state)
    assert state.read_bytes() == before
    assert [(d, q) for d, _, q in restarted.pending()] == [("users", Decimal(3))]
    restarted.close()


def test_an_add_that_could_not_be_saved_is_not_counted(
    emulator: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    state = tmp_path / "meter" / "meter.json"
    meter = started(emulator, clock, state)
    meter.add("users", 1)
    moved = tmp_path / "elsewhere"
    state.parent.rename(moved)  # the directory is gone: the save fails
    with pytest.raises(ConfigurationError, match="cannot be written") as caught:
        meter.add("users", 2)
    assert "holds usage not yet reported" in caught.value.diagnosis()
    assert [q for _, _, q in meter.pending()] == [Decimal(1)]
    moved.rename(state.parent)
    meter.add("users", 2)  # the caller adds it again: counted once
    meter.close()
    assert billed(emulator) == [("users", H10, "3")]


def test_with_a_persist_interval_adds_are_saved_later(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    meter = started(emulator, clock, state, persist_interval=5.0)
    meter.add("users", 3)
    assert json.loads(state.read_text())["buckets"] == []  # a crash now would lose it
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


def test_the_background_sender_sends_what_a_previous_run_left_without_blocking_start(
    emulator: Emulator, clock: FakeClock, state: Path
) -> None:
    first = started(emulator, clock, state)
    first.add("users", 3)
    crash(first)
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
    started(emulator, clock, state).close()
    assert state.stat().st_mode & 0o077 == 0
