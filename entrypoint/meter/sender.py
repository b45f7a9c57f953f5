"""The task's one sender: whoever holds the store's lease seals each ended hour and sends it once.

Any number of processes may run a `Sender` (every background `Meter`, ``meter serve``); the
store's lease (`UsageStore.claim`: a holder and an expiry, renewed every third of its length)
makes one of them the sender at a time. PIDs are not comparable across the containers of a task,
so liveness is time: a holder that dies stops renewing, and after `LEASE_SECONDS` another process
takes over. A holder that stops cleanly releases the lease at once.

Two senders at once (a holder paused past its lease) cannot bill twice: a sealed bucket's
quantity never changes and its ClientToken is derived from the task, product, dimension and hour
(`book.Bucket.token`), so every send of it, from any process, is the identical request, which AWS
answers with the record it already made.

Refusals: with one store per task and one sender, AWS refusing a record for good
(``DuplicateRequestException``, ``IdempotencyConflictException``) means something else reported
that dimension and hour for this task (another store, or ``meter`` sending directly). That usage
is not billed by this record; it is kept in the store as ``refused``, with AWS's reason, logged as
an error and listed by `Meter.lost` and ``meter status``: never dropped silently.

Shutdown (`Sender.shutdown`): what is due is sent; the *current* hour too only when no other
member of the task has been heard from within the lease, since a process still adding would
otherwise have its usage carried into an hour that cannot be sent before that hour ends.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from entrypoint.errors import EntrypointError, UsageRejectedError
from entrypoint.logs import event
from entrypoint.metering import MeterUsageClient
from entrypoint.retry import Backoff

from .book import Bucket
from .database import CHECKPOINT_INTERVAL
from .hours import HOUR, format_quantity, hour_start, hour_text
from .ledger import close_hours, collect, pending
from .send import send_usage
from .store import UsageStore

__all__ = [
    "LEASE_SECONDS",
    "RETRY_INTERVAL",
    "SEND_SPREAD",
    "FailedUsage",
    "FlushReport",
    "Sender",
    "SentUsage",
    "member_id",
]

# After an hour ends, each sender waits its own share of this long (uniformly drawn once) before
# sending, so that a fleet of tasks does not call MeterUsage in the same second. Ours, not AWS's.
SEND_SPREAD = 60.0
# How soon a sender tries again after a send that failed.
RETRY_INTERVAL = 300.0
# How long a sender's lease lasts unless renewed (every third of it): the longest a task goes
# without a sender after its sender was killed.
LEASE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SentUsage:
    dimension: str
    hour: datetime
    quantity: Decimal
    record_id: str


@dataclass(frozen=True, slots=True)
class FailedUsage:
    """A bucket that could not be sent. ``dropped``: it will not be sent again (AWS refused it
    for good, or it became too old); it stays in the store as lost. Otherwise it is sent later."""

    dimension: str
    hour: datetime
    quantity: Decimal
    error: EntrypointError
    dropped: bool


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one round of sending did, what is still waiting, and who the task's sender is."""

    sent: tuple[SentUsage, ...] = ()
    failed: tuple[FailedUsage, ...] = ()
    pending: tuple[tuple[str, datetime, Decimal], ...] = ()
    sender: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def _when(hour: int) -> datetime:
    return datetime.fromtimestamp(hour, UTC)


def member_id(kind: str) -> str:
    """A process's name in the store: readable (host, PID) and unique (a random part)."""
    return f"{kind}:{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseLost(Exception):  # noqa: N818 - an event, not an error to report
    """Another process holds the lease now: this sender stops its round (no harm: the bucket
    stays sealed and the new holder sends the identical request)."""


class Sender:
    """One process's candidacy for sending the task's usage (see the module docstring)."""

    def __init__(
        self,
        store: UsageStore,
        *,
        client: MeterUsageClient,
        kind: str = "meter",
        send_deadline: float = 300.0,
        backoff: Backoff | None = None,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.store = store
        self.client = client
        self.kind = kind
        self.id = member_id(kind)
        self.lease_seconds = lease_seconds
        self.send_deadline = send_deadline
        self._backoff = backoff or Backoff(base=1.0, cap=30.0)
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._uniform = uniform
        self.spread = uniform(0.0, SEND_SPREAD)
        self._next_send = 0.0  # clock time of the next round that sends; 0: at once
        self._next_claim = 0.0  # clock time of the next heartbeat and claim
        self._holding = False

    # -- one round ------------------------------------------------------------------------------
    def claim(self) -> bool:
        """Heartbeat, and take or renew the lease; True if this process is the sender."""
        return self.store.claim(self.id, self.kind, self._clock(), self.lease_seconds) == self.id

    def round(self, *, current_hour: bool = False, delay: float = 0.0) -> FlushReport:
        """If this process holds the lease: report lost what is too old, seal the hours that
        ended at least ``delay`` seconds ago (and the current hour, if ``current_hour``), and
        send every sealed bucket, oldest first. Otherwise only report what is pending."""
        now = self._clock()
        if not self.claim():
            return FlushReport(pending=self._pending(), sender=self.store.holder(now))
        close_hours(self.store, now - delay if not current_hour else now, current_hour=current_hour)
        failed = [self._expired(bucket) for bucket in self.store.expire(now)]
        due = self.store.buckets(("sealed",))
        sent: list[SentUsage] = []
        sender: str | None = self.id
        try:
            for bucket in due:
                outcome = self._send_bucket(bucket)
                if isinstance(outcome, SentUsage):
                    sent.append(outcome)
                    continue
                failed.append(outcome)
                if not outcome.dropped:
                    break  # not this record's fault (network, credentials): stop this round
        except LeaseLost:
            sender = self.store.holder(self._clock())
        self.store.forget(now)
        return FlushReport(
            sent=tuple(sent), failed=tuple(failed), pending=self._pending(), sender=sender
        )

    def _pending(self) -> tuple[tuple[str, datetime, Decimal], ...]:
        return tuple((b.dimension, _when(b.hour), b.quantity) for b in pending(self.store))

    def _pause(self, seconds: float) -> None:
        """A backoff wait that renews the lease at least every third of its length."""
        end = self._monotonic() + seconds
        while (left := end - self._monotonic()) > 0:
            self._sleep(min(left, self.lease_seconds / 3))
            if not self.claim():
                raise LeaseLost

    def _send_bucket(self, bucket: Bucket) -> SentUsage | FailedUsage:
        if not self.claim():
            raise LeaseLost
        quantity = format_quantity(bucket.quantity)
        try:
            record_id = send_usage(
                self.client,
                product_code=self.store.product_code,
                dimension=bucket.dimension,
                hour=bucket.hour,
                quantity=quantity,
                client_token=bucket.token(self.store.instance_id, self.store.product_code),
                deadline=self.send_deadline,
                backoff=self._backoff,
                clock=self._monotonic,
                sleep=self._pause,
                uniform=self._uniform,
            )
        except UsageRejectedError as error:
            self.store.mark_refused(bucket, f"{error.code}: {error.reason}")
            event(
                logging.ERROR,
                f"MeterUsage refused {quantity} {bucket.dimension} for {hour_text(bucket.hour)} "
                f"for good, so this record is not billed; it is kept in the store as refused: "
                f"{error.diagnosis()}",
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
        self.store.mark_sent(bucket, record_id)
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
            remedy="keep a sender running (a background Meter or meter serve), or restart within "
            "6 hours of a stop",
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

    # -- running --------------------------------------------------------------------------------
    def step(self) -> float:
        """What a running sender does when it wakes: every third of the lease, heartbeat and
        claim; as the holder, send when an hour has ended (plus this sender's spread) or a retry
        is due, and fold the WAL back every `CHECKPOINT_INTERVAL`. Returns how long to wait
        (clock seconds) before the next step."""
        now = self._clock()
        if now >= self._next_claim:
            self._holding = self.claim()
            self._next_claim = now + self.lease_seconds / 3
            if self._holding:
                collect(self.store)  # the shards of processes that are gone
        shard = self.store.shard
        if shard is not None:
            shard.checkpoint()  # every process folds its own shard's WAL back, outside its adds
        if not self._holding:
            self._next_send = 0.0  # on taking over, send at once: the holder may have died
            wake = (
                self._next_claim
                if shard is None
                else min(self._next_claim, now + CHECKPOINT_INTERVAL)
            )
            return max(0.0, wake - now)
        if now >= self._next_send:
            report = self.round(delay=self.spread)
            after = hour_start(now) + HOUR + self.spread
            self._next_send = min(after, now + RETRY_INTERVAL) if not report.ok else after
        self.store.checkpoint()
        return max(0.0, min(self._next_claim, self._next_send, now + CHECKPOINT_INTERVAL) - now)

    def shutdown(self) -> FlushReport:
        """Stop: send what is due, and the current hour too when no other member of the task is
        alive; then release the lease and leave. Usage not sent stays in the store."""
        now = self._clock()
        others = [m for m in self.store.members(now) if m.id != self.id]
        try:
            report = self.round(current_hour=not others)
        finally:
            self.store.leave(self.id)
        current = [p for p in report.pending if p[1] <= _when(hour_start(now))]
        if current and others and report.sender == self.id:
            event(
                logging.INFO,
                f"stopping with {len(current)} hour(s) of usage still open: "
                f"{len(others)} other process(es) of the task are still metering and send it",
                event="meter_handover",
                members=[m.id for m in others],
            )
        return report
