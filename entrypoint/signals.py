"""SIGINT and SIGTERM during the bootstrap: stop within a second, even mid-call or mid-backoff.

A handler that raises is how CPython interrupts a blocking ``time.sleep`` or socket read (PEP 475
retries the call only when the handler returns). The exception is a `BaseException`, so library
code that catches ``Exception`` (botocore's send path does) cannot swallow it. The bootstrap turns
it into `entrypoint.errors.BootstrapInterrupted` (exit 128+N, tini's convention) at its boundary.

Installing a handler also matters when the entrypoint runs as PID 1 without an init: the kernel
drops signals to PID 1 that have no handler.

Raising is not enough on its own: a signal that arrives while native code (an extension module
initialising, or calling back into Python) is on the stack may see its exception dropped by that
code, never to surface. So the handler also records the signal, and the bootstrap checks the
record at its own safe points (`raise_if_interrupted`): before each attempt and after each
backoff wait, and just before exec; the bounded exchange (`entrypoint.capped`) waits for
botocore on a worker thread, so the main thread's wait is always interruptible. A swallowed SIGTERM
therefore still ends the run promptly, and never lets the workload start.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["HANDLED_SIGNALS", "Interrupted", "raise_if_interrupted", "raise_on_signals"]

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A handled signal arrived. Not an `Exception`, so nothing in between can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# The first handled signal this process received (None: none). Written only by the handler.
_received: int | None = None


def _raise(signum: int, _frame: FrameType | None) -> None:
    global _received  # noqa: PLW0603 - the handler's record, read by raise_if_interrupted
    if _received is None:
        _received = signum
    raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a handled signal arrived, even if its exception was swallowed."""
    if _received is not None:
        raise Interrupted(_received)


@contextmanager
def raise_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted`; afterwards the previous
    dispositions are back (an inherited SIG_IGN stays ignored for the workload).

    Outside the main thread (the in-process API called from a worker) signals cannot be handled
    here, and the block runs unchanged: the host application owns its signals.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in HANDLED_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue  # ignored by whoever started us: keep it ignored, as a direct exec would
        previous[signum] = current
        signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
