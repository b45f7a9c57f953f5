"""`Meter`: custom-dimension usage from inside the seller's software, into the task's usage store.

    with Meter(product_code="prod-abc", dimensions=["users", "gb"],
               state_file="/var/run/marketplace-meter/usage.db") as meter:
        meter.add("users", 3)
        meter.add("gb", Decimal("0.25"))

A `Meter` is a client of the task's store (`entrypoint.meter.store`): every process and thread
of the task may have one on the same file (a prefork server's workers, a Go program calling
``meter add``, a ``meter serve`` sidecar), and their usage adds up in one book. What it
guarantees, and how:

* **One MeterUsage per dimension per hour** ("you can only report usage once per hour for each
  dimension ... per ECS task or EKS pod"): usage is summed per dimension and UTC hour, and each
  ended hour is sent once by the task's one sender, chosen through the store (a lease: see
  `entrypoint.meter.sender`), with its hour-start timestamp.
* **No double billing**: each (task, product, dimension, hour) has a deterministic ClientToken
  and a bucket's quantity is frozen before its first send, so every retry, resend after a crash,
  or send by a process that took over the lease is the identical request, which AWS answers with
  the record it already made.
* **No lost usage**: `add` returns when the usage is committed to the store (to this process's
  own shard of it: one SQLite transaction, tens of microseconds, waiting for no other process),
  so the death of any process loses nothing that was added;
  ``durability="machine"`` makes each add survive a machine crash too. Unsent hours survive
  restarts in the store and are sent by whichever process sends next, within MeterUsage's 6
  hours; usage for an hour already reported is carried into the next hour. Usage that cannot be
  billed (too old, refused by AWS) is kept, logged and listed by `lost`, never dropped silently.
* **Flush on shutdown**: `close` (or leaving the ``with`` block) sends what is due, and the
  current hour too if no other process of the task is still metering.
* **Preflight**: `start` runs a MeterUsage DryRun per dimension, so a wrong product code,
  dimension, Region or IAM policy stops the software at start-up, not an hour later.

Time, sleep and jitter are injected; with ``background=False`` nothing runs on its own and the
owner calls `send_due` (tests move time instead of sleeping).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Self

from entrypoint.errors import UsageError
from entrypoint.logs import event
from entrypoint.metering import MeterUsageClient
from entrypoint.retry import Backoff

from .book import Bucket
from .hours import check_dimension, hour_start, parse_quantity, to_micros, usage_time
from .ledger import fold_own, pending
from .opening import open_store
from .send import default_client, meter_dry_run
from .sender import LEASE_SECONDS, FailedUsage, FlushReport, Sender, SentUsage
from .store import Durability, UsageStore

__all__ = ["FailedUsage", "FlushReport", "Meter", "SentUsage"]


class Meter:
    """Usage metering for one product, as one of the task's processes (see the module docstring).

    ``dimensions`` are the product's pricing dimensions (their API names); `add` refuses others.
    ``state_file`` is the task's usage store, shared by every process of the task (a JSON state
    file of an earlier version there is imported once). ``client`` and ``region`` default to
    botocore in the task's Region. ``send_deadline`` bounds the retries of one hour's record (then
    it waits for the next round). ``durability`` "machine" fsyncs every add (against a machine
    crash, for a store on a persistent volume); the default survives the death of any process.
    ``lease_seconds`` is how long the task may go without a sender after its sender died.
    """

    def __init__(
        self,
        *,
        product_code: str,
        dimensions: Iterable[str],
        state_file: Path | str,
        client: MeterUsageClient | None = None,
        region: str | None = None,
        send_deadline: float = 300.0,
        backoff: Backoff | None = None,
        durability: Durability | None = None,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.product_code = product_code
        self.dimensions = tuple(check_dimension(d) for d in dimensions)
        if not self.dimensions:
            raise UsageError("a meter needs at least one dimension")
        self.state_file = Path(state_file)
        self._client = client
        self._region = region
        self._send_deadline = send_deadline
        self._backoff = backoff or Backoff(base=1.0, cap=30.0)
        self._durability: Durability | None = durability
        self._lease_seconds = lease_seconds
        self._clock, self._monotonic, self._sleep, self._uniform = clock, monotonic, sleep, uniform
        # Injected clocks move in jumps: the sender then polls them rather than waiting.
        self._poll = None if clock is time.time else 0.01
        self._store: UsageStore | None = None
        self._sender: Sender | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        # What start() sent (or found too old to send) of the usage left from before.
        self.start_report = FlushReport()

    @property
    def store(self) -> UsageStore:
        """The task's store, once started."""
        if self._store is None:
            raise UsageError("the meter is not started", remedy="call start() or use `with`")
        return self._store

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, *, preflight: bool = True, background: bool = True) -> Self:
        """Open (or create, or import) the store, run the DryRun preflight, and start the
        background sender, which competes for the task's lease and first sends the hours that
        ended while nobody was sending. Without ``background``, those are sent before `start`
        returns if this process gets the lease, and `start_report` says how."""
        if self._store is not None:
            return self
        store = open_store(
            self.state_file,
            product_code=self.product_code,
            dimensions=self.dimensions,
            durability=self._durability,
            shard=True,  # this process's adds wait for no other process
            clock=self._clock,
        )
        try:
            if self._client is None:
                self._client = default_client(self._region)
            if preflight:
                for dimension in self.dimensions:
                    meter_dry_run(
                        product_code=self.product_code,
                        dimension=dimension,
                        client=self._client,
                        clock=self._monotonic,
                        sleep=self._sleep,
                        wall_clock=self._clock,
                    )
            self._store = store
            self._sender = Sender(
                store,
                client=self._client,
                send_deadline=self._send_deadline,
                backoff=self._backoff,
                lease_seconds=self._lease_seconds,
                clock=self._clock,
                monotonic=self._monotonic,
                sleep=self._sleep,
                uniform=self._uniform,
            )
            unsent = store.pending()
            if unsent:
                event(
                    logging.INFO,
                    f"meter store {store.path}: {len(unsent)} hour(s) of usage not yet reported",
                    event="meter_state_loaded",
                    unsent=len(unsent),
                )
            if not background:  # else the sender thread does it first thing, without blocking
                self.start_report = self.send_due()
            else:
                # A member of the task from now on, before the first add: a sender that stops
                # while the thread has yet to run must still see this process and leave the
                # current hour open (sender.shutdown).
                self._sender.claim()
        except BaseException:
            self._store = self._sender = None
            store.close()
            raise
        if background:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="marketplace-meter", daemon=True)
            self._thread.start()
        return self

    def close(self) -> FlushReport:
        """Stop the sender; send what is due, and the current hour too unless another process
        of the task is still metering; leave the store. Usage not sent stays in the store."""
        if self._store is None or self._sender is None:
            return FlushReport()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._send_deadline + 10)
            self._thread = None
        try:
            with self._send_lock:
                report = self._sender.shutdown()
            fold_own(self._store)  # what is left of this process's shard: into the store
        finally:
            self._store.close()
            self._store = self._sender = None
        return report

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- usage ----------------------------------------------------------------------------------
    def add(
        self,
        dimension: str,
        quantity: int | Decimal | str | float,
        *,
        at: datetime | float | None = None,
    ) -> datetime:
        """Count ``quantity`` of ``dimension`` now (or ``at``, at most 6 hours ago); return the
        hour it was credited to. Committed to the store when it returns.

        `UsageError` for an undeclared dimension, a quantity MeterUsage cannot carry (negative,
        over 6 decimals or 9999999999.999999, not finite), or a time that is naive, not finite,
        in the future or over 6 hours ago. `ConfigurationError` if the store cannot be written;
        the usage is then not counted.
        """
        store = self.store
        if dimension not in self.dimensions:
            raise UsageError(
                f"dimension {dimension!r} is not one of this meter's: {', '.join(self.dimensions)}"
            )
        micros = to_micros(parse_quantity(quantity))
        when = usage_time(at, self._clock())
        return _when(store.add(dimension, micros, hour_start(when)))

    def send_due(self) -> FlushReport:
        """Send every hour that has ended, if this process holds the task's lease (taking it if
        it is free). Safe to call at any time, from any thread."""
        return self._round(current_hour=False)

    def flush(self) -> FlushReport:
        """Send every hour including the current one, if this process holds the lease. After
        this, more usage in the current hour is carried into the next hour (AWS takes one
        record per hour)."""
        return self._round(current_hour=True)

    def pending(self) -> list[tuple[str, datetime, Decimal]]:
        """Usage of the task not yet reported: (dimension, hour, quantity), oldest first."""
        return [_row(b) for b in pending(self.store)]

    def lost(self) -> list[tuple[str, datetime, Decimal, str]]:
        """Usage that will not be billed: (dimension, hour, quantity, why), oldest first: AWS
        refused its record for good, or it was not reported within MeterUsage's 6 hours."""
        return [(*_row(b), b.error or b.state) for b in self.store.lost()]

    # -- internals ------------------------------------------------------------------------------
    def _round(self, *, current_hour: bool) -> FlushReport:
        self.store  # noqa: B018 - raises when not started
        assert self._sender is not None  # noqa: S101 - set with the store
        with self._send_lock:
            return self._sender.round(current_hour=current_hour)

    def _run(self) -> None:
        """The background sender: claim or renew the lease, send when due, wait; repeat."""
        sender = self._sender
        assert sender is not None  # noqa: S101 - set by start()
        wait = 0.0
        while not self._wait(wait):
            try:
                with self._send_lock:
                    wait = sender.step()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                wait = sender.lease_seconds / 3
                event(
                    logging.ERROR,
                    f"the meter's sender failed: {type(exc).__name__}: {exc}",
                    event="meter_sender_failed",
                )

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` of the meter's clock; True when stopping."""
        if self._poll is None:
            return self._stop.wait(seconds)
        end = self._clock() + seconds
        while self._clock() < end:
            if self._stop.wait(self._poll):
                return True
        return self._stop.is_set()


def _when(hour: int) -> datetime:
    return datetime.fromtimestamp(hour, UTC)


def _row(bucket: Bucket) -> tuple[str, datetime, Decimal]:
    return (bucket.dimension, _when(bucket.hour), bucket.quantity)
