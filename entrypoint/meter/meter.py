"""`Meter`: custom-dimension usage from inside the seller's software, reported once per hour.

    with Meter(product_code="prod-abc", dimensions=["users", "gb"],
               state_file="/var/lib/my-app/meter.json") as meter:
        meter.add("users", 3)
        meter.add("gb", Decimal("0.25"))

What it guarantees, and how:

* **One MeterUsage per dimension per hour** ("you can only report usage once per hour for each
  dimension ... per ECS task or EKS pod"): usage is summed per dimension and UTC hour, and an
  hour is sent once it has ended (or on shutdown), with its hour-start timestamp.
* **No double billing**: each (task, product, dimension, hour) has a deterministic ClientToken
  (`hours.client_token`), and a bucket's quantity is frozen and saved before its first send, so
  every retry, and every resend after a restart, is the identical request, which AWS answers
  with the record it already made.
* **No lost usage**: `add` saves the state file (atomically: temp file, fsync, rename) before it
  returns, unless ``persist_interval`` trades that for speed (a crash may then lose that many
  seconds of usage). Unsent hours survive restarts in the file and are sent on the next start,
  as long as that is within MeterUsage's 6 hours. Usage for an hour already reported (after a
  shutdown and restart within one hour) is carried into the next hour.
* **Flush on shutdown**: `close` (or leaving the ``with`` block) sends every hour including the
  current one.
* **Preflight**: `start` runs a MeterUsage DryRun per dimension, so a wrong product code,
  dimension, Region or IAM policy stops the software at start-up, not an hour later.

Time, sleep and jitter are injected; with ``background=False`` nothing runs on its own and the
owner calls `send_due` (tests move time instead of sleeping).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Self

from entrypoint.errors import (
    ConfigurationError,
    EntrypointError,
    UsageError,
    UsageRejectedError,
)
from entrypoint.logs import event
from entrypoint.metering import MeterUsageClient
from entrypoint.retry import Backoff

from .book import Bucket, UsageBook
from .hours import (
    MAX_AGE,
    check_dimension,
    format_quantity,
    hour_start,
    hour_text,
    parse_quantity,
    seconds_to_next_hour,
)
from .send import default_client, meter_dry_run, send_usage
from .store import StateFile

__all__ = ["FailedUsage", "FlushReport", "Meter", "SentUsage"]

# After an hour ends, the background thread waits up to this long (uniformly) before sending,
# so that a fleet of tasks does not call MeterUsage in the same second. Ours, not AWS's.
SEND_SPREAD = 60.0
# How soon the background thread tries again after a send that failed.
RETRY_INTERVAL = 300.0


@dataclass(frozen=True, slots=True)
class SentUsage:
    dimension: str
    hour: datetime
    quantity: Decimal
    record_id: str


@dataclass(frozen=True, slots=True)
class FailedUsage:
    """A bucket that could not be sent. ``dropped``: AWS refused it for good (or it became too
    old to send), so it was removed; otherwise it stays in the state file and is sent later."""

    dimension: str
    hour: datetime
    quantity: Decimal
    error: EntrypointError
    dropped: bool


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one round of sending did, and what is still waiting."""

    sent: tuple[SentUsage, ...] = ()
    failed: tuple[FailedUsage, ...] = ()
    pending: tuple[tuple[str, datetime, Decimal], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed


def _when(hour: int) -> datetime:
    return datetime.fromtimestamp(hour, UTC)


class Meter:
    """Usage metering for one product in one task or pod (see the module docstring).

    ``dimensions`` are the product's pricing dimensions (their API names); `add` refuses others.
    ``state_file`` keeps unsent usage across restarts; one meter per file. ``client`` and
    ``region`` default to botocore in the task's Region. ``send_deadline`` bounds the retries of
    one hour's record (then it waits for the next round); ``persist_interval`` None makes every
    `add` durable before it returns; a number makes the sender thread save that often instead
    (and every send and `close` saves), so a crash loses at most that many seconds of usage.
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
        persist_interval: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.product_code = product_code
        self.dimensions = tuple(check_dimension(d) for d in dimensions)
        if not self.dimensions:
            raise UsageError("a meter needs at least one dimension")
        self.store = StateFile(state_file)
        self._client = client
        self._region = region
        self._send_deadline = send_deadline
        self._backoff = backoff or Backoff(base=1.0, cap=30.0)
        self._persist_interval = persist_interval
        self._clock, self._monotonic, self._sleep, self._uniform = clock, monotonic, sleep, uniform
        self._book: UsageBook | None = None
        self._lock = threading.RLock()  # the book
        self._send_lock = threading.Lock()  # one round of sending at a time
        self._save_lock = threading.Lock()  # the file
        self._changes = 0
        self._saved = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_soon = False
        # What start() sent (or found too old to send) of the usage a previous run left behind.
        self.start_report = FlushReport()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, *, preflight: bool = True, background: bool = True) -> Self:
        """Own the state file, load it, run the DryRun preflight, and start the sender thread,
        which first sends the hours that ended while the software was down. Without
        ``background``, those are sent before `start` returns, and `start_report` says how."""
        if self._book is not None:
            return self
        self.store.acquire()
        try:
            self._book = self._load()
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
            if not background:  # else the sender thread does it first thing, without blocking
                self.start_report = self.send_due()
        except BaseException:
            self._book = None
            self.store.release()
            raise
        if background:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="marketplace-meter", daemon=True)
            self._thread.start()
        return self

    def close(self) -> FlushReport:
        """Stop the sender, send every hour including the current one, save, and let go of the
        state file. Usage that could not be sent stays in the file for the next start."""
        if self._book is None:
            return FlushReport()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._send_deadline + 10)
            self._thread = None
        try:
            report = self.flush()
        finally:
            self._save(force=True)
            self._book = None
            self.store.release()
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
        hour it was credited to. Durable when it returns (unless ``persist_interval`` is set).

        `UsageError` for an undeclared dimension, a quantity MeterUsage cannot carry (negative,
        over 6 decimals or 9999999999.999999), or a time that is naive, in the future or over 6
        hours ago. `ConfigurationError` if the state file cannot be written; the usage is then
        not counted.
        """
        book = self._require_started()
        if dimension not in self.dimensions:
            raise UsageError(
                f"dimension {dimension!r} is not one of this meter's: {', '.join(self.dimensions)}"
            )
        amount = parse_quantity(quantity)
        now = self._clock()
        if isinstance(at, datetime) and at.tzinfo is None:
            raise UsageError(
                f"usage time {at.isoformat()} has no time zone",
                remedy="pass an aware datetime, such as datetime.now(UTC)",
            )
        when = now if at is None else (at.timestamp() if isinstance(at, datetime) else float(at))
        if when > now or now - when > MAX_AGE:
            raise UsageError(
                f"usage time {datetime.fromtimestamp(when, UTC).isoformat()} is not within the "
                "last 6 hours",
                remedy="MeterUsage takes usage at most 6 hours old and never from the future",
            )
        with self._lock:
            credited = book.add(dimension, amount, hour_start(when))
            self._changes += 1
        if self._persist_interval is None:
            try:
                self._save()
            except BaseException:
                # Not on disk, so not counted: the caller may add it again without billing twice.
                with self._lock:
                    book.undo(dimension, amount, credited)
                    self._changes += 1
                raise
        return _when(credited)

    def send_due(self) -> FlushReport:
        """Send every hour that has ended. Safe to call at any time, from any thread."""
        return self._send(current_hour=False)

    def flush(self) -> FlushReport:
        """Send every hour including the current one. After this, more usage in the current
        hour is carried into the next hour (AWS takes one record per hour)."""
        return self._send(current_hour=True)

    def pending(self) -> list[tuple[str, datetime, Decimal]]:
        """Usage not yet reported: (dimension, hour, quantity), oldest first."""
        with self._lock:
            book = self._require_started()
            return [(b.dimension, _when(b.hour), b.quantity) for b in book.unsent()]

    # -- internals ------------------------------------------------------------------------------
    def _require_started(self) -> UsageBook:
        if self._book is None:
            raise UsageError("the meter is not started", remedy="call start() or use `with`")
        return self._book

    def _load(self) -> UsageBook:
        data = self.store.load()
        if data is None:
            return UsageBook(self.product_code, instance_id=secrets.token_hex(16))
        try:
            book = UsageBook.from_json(data)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self.store.damaged(f"is damaged ({type(exc).__name__}: {exc})") from None
        if book.product_code != self.product_code:
            raise ConfigurationError(
                f"the meter state file {self.store.path} belongs to product {book.product_code}, "
                f"not {self.product_code}",
                remedy="give each product its own state file",
            )
        unsent = book.unsent()
        if unsent:
            event(
                logging.INFO,
                f"meter state {self.store.path}: {len(unsent)} hour(s) of usage not yet reported",
                event="meter_state_loaded",
                unsent=len(unsent),
            )
        return book

    def _save(self, *, force: bool = False) -> None:
        """Write the book if it changed since the last write (snapshots never go backwards)."""
        with self._save_lock:
            with self._lock:
                if self._book is None or (self._changes == self._saved and not force):
                    return
                snapshot, version = self._book.to_json(), self._changes
            self.store.save(snapshot)
            self._saved = max(self._saved, version)

    def _send(self, *, current_hour: bool) -> FlushReport:
        with self._send_lock:
            book = self._require_started()
            now = self._clock()
            failed: list[FailedUsage] = []
            with self._lock:
                failed.extend(self._expired(bucket) for bucket in book.expire(now))
                due = book.seal(now, current_hour=current_hour)
                self._changes += 1
            self._save()  # sealed quantities are on disk before the first attempt
            sent: list[SentUsage] = []
            for bucket in due:
                outcome = self._send_bucket(book, bucket)
                if isinstance(outcome, SentUsage):
                    sent.append(outcome)
                    continue
                failed.append(outcome)
                if not outcome.dropped:
                    break  # not this record's fault (network, credentials): stop this round
            self._save()
            with self._lock:
                pending = tuple((b.dimension, _when(b.hour), b.quantity) for b in book.unsent())
            return FlushReport(sent=tuple(sent), failed=tuple(failed), pending=pending)

    def _send_bucket(self, book: UsageBook, bucket: Bucket) -> SentUsage | FailedUsage:
        quantity = format_quantity(bucket.quantity)
        assert self._client is not None  # noqa: S101 - set by start()
        try:
            record_id = send_usage(
                self._client,
                product_code=self.product_code,
                dimension=bucket.dimension,
                hour=bucket.hour,
                quantity=quantity,
                client_token=bucket.token,
                deadline=self._send_deadline,
                backoff=self._backoff,
                clock=self._monotonic,
                sleep=self._sleep,
                uniform=self._uniform,
            )
        except UsageRejectedError as error:
            with self._lock:
                book.drop(bucket)
                self._changes += 1
            event(
                logging.ERROR,
                f"MeterUsage refused {quantity} {bucket.dimension} for {hour_text(bucket.hour)} "
                f"for good, so it will not be billed: {error.diagnosis()}",
                event="meter_usage_rejected",
                dimension=bucket.dimension,
                hour=hour_text(bucket.hour),
                quantity=quantity,
                error=error.code,
            )
            return FailedUsage(
                bucket.dimension, _when(bucket.hour), bucket.quantity, error, dropped=True
            )
        except EntrypointError as error:
            event(
                logging.ERROR,
                f"MeterUsage for {bucket.dimension}, {hour_text(bucket.hour)} failed; kept to "
                f"send again: {error.diagnosis()}",
                event="meter_usage_failed",
                dimension=bucket.dimension,
                hour=hour_text(bucket.hour),
                error=type(error).__name__,
            )
            return FailedUsage(
                bucket.dimension, _when(bucket.hour), bucket.quantity, error, dropped=False
            )
        with self._lock:
            book.mark_sent(bucket, record_id)
            self._changes += 1
        self._save()
        event(
            logging.INFO,
            f"MeterUsage recorded {quantity} {bucket.dimension} for {hour_text(bucket.hour)} "
            f"(record {record_id})",
            event="meter_usage_sent",
            dimension=bucket.dimension,
            hour=hour_text(bucket.hour),
            quantity=quantity,
            record_id=record_id,
        )
        return SentUsage(bucket.dimension, _when(bucket.hour), bucket.quantity, record_id)

    def _expired(self, bucket: Bucket) -> FailedUsage:
        quantity = format_quantity(bucket.quantity)
        error = UsageRejectedError(
            f"{quantity} {bucket.dimension} for {hour_text(bucket.hour)} was not reported within "
            "MeterUsage's 6 hours",
            code="TimestampOutOfBoundsException",
            remedy="keep the software running, or restart it within 6 hours of a stop",
        )
        event(
            logging.ERROR,
            f"usage lost: {error.reason}",
            event="meter_usage_expired",
            dimension=bucket.dimension,
            hour=hour_text(bucket.hour),
            quantity=quantity,
        )
        return FailedUsage(
            bucket.dimension, _when(bucket.hour), bucket.quantity, error, dropped=True
        )

    def _run(self) -> None:
        """The background sender: at once, then after each hour ends (plus a spread), send;
        save on time."""
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                report = self.send_due()
                if self._persist_interval is not None:
                    self._save()
                self._retry_soon = not report.ok
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                self._retry_soon = True
                event(
                    logging.ERROR,
                    f"the meter's sender failed: {type(exc).__name__}: {exc}",
                    event="meter_sender_failed",
                )
            wait = self._next_wake()

    def _next_wake(self) -> float:
        wait = seconds_to_next_hour(self._clock()) + self._uniform(0.0, SEND_SPREAD)
        if self._retry_soon:
            wait = min(wait, RETRY_INTERVAL)
        if self._persist_interval is not None:
            wait = min(wait, self._persist_interval)
        return max(wait, 0.0)
