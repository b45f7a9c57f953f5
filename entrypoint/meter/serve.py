"""``meter serve``: the task's sender as a process of its own (a sidecar), until SIGTERM.

The first SIGTERM or SIGINT stops the sending loop at its next safe point (a wait, a backoff);
the bucket being sent stays sealed. Then `Sender.shutdown` sends what is due (and the current
hour when no other member of the task is alive) with its own, shorter deadline, so the sidecar
ends within the platform's grace period (ECS ``stopTimeout``, Kubernetes
``terminationGracePeriodSeconds``, 30 s by default). A second signal ends it at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from entrypoint.config import Settings
from entrypoint.errors import EntrypointError
from entrypoint.logs import event
from entrypoint.metering import MeterUsageClient
from entrypoint.retry import Backoff
from entrypoint.signals import HANDLED_SIGNALS, Interrupted

from .opening import open_store
from .send import default_client, meter_dry_run
from .sender import FlushReport, Sender
from .store import Durability

__all__ = ["serve"]


class _Stopping(BaseException):
    """The first signal: leave the sending loop (never an error)."""


class _Signals:
    """The first signal asks the loop to stop; a second one interrupts whatever runs."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.draining = False
        self.received = 0

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received += 1
        self.stop.set()
        if self.received > 1 or self.draining:
            raise Interrupted(signum)

    def sleep(self, seconds: float) -> None:
        """The sender's backoff wait: cut short by the first signal, unless draining."""
        if self.draining:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise _Stopping

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.getsignal(s) for s in HANDLED_SIGNALS}
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self.handle)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def serve(
    path: str,
    *,
    product_code: str,
    dimensions: Sequence[str],
    durability: Durability | None,
    settings: Settings,
    send_deadline: float,
    shutdown_deadline: float,
    client: MeterUsageClient | None = None,
) -> FlushReport:
    """Send the task's usage from the store at ``path`` until a signal; return the last round."""
    store = open_store(
        path, product_code=product_code, dimensions=dimensions, durability=durability
    )
    try:
        metering = client or default_client(
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout
        )
        backoff = Backoff(base=settings.retry_base_delay, cap=settings.retry_max_delay)
        declared = store.declared()
        for dimension in declared:
            meter_dry_run(
                product_code=product_code, dimension=dimension, client=metering, backoff=backoff
            )
        signals = _Signals()
        sender = Sender(
            store,
            client=metering,
            kind="serve",
            send_deadline=send_deadline,
            backoff=backoff,
            sleep=signals.sleep,
        )
        with signals.installed():
            event(
                logging.INFO,
                f"meter serve: sending product {product_code}'s usage ({', '.join(declared)}) "
                f"from {store.path} as {sender.id}",
                event="meter_serve_started",
                store=str(store.path),
                dimensions=list(declared),
            )
            _loop(sender, signals)
            signals.draining = True
            sender.send_deadline = shutdown_deadline
            report = sender.shutdown()
        event(
            logging.INFO,
            f"meter serve stopped: {len(report.sent)} record(s) sent at shutdown, "
            f"{len(report.pending)} hour(s) pending, {len(report.failed)} failed",
            event="meter_serve_stopped",
            sent=len(report.sent),
            pending=len(report.pending),
            failed=len(report.failed),
        )
        return report
    finally:
        store.close()


def _loop(sender: Sender, signals: _Signals) -> None:
    wait = 0.0
    while not signals.stop.wait(wait):
        try:
            wait = sender.step()
        except _Stopping:
            return
        except EntrypointError as error:
            wait = sender.lease_seconds / 3
            event(
                logging.ERROR,
                f"the meter's sender failed: {error.diagnosis()}",
                event="meter_sender_failed",
            )
