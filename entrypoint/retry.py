"""One retry loop for every Metering call: capped exponential backoff, full jitter, a deadline.

AWS "strongly recommends implementing retries for up to 30 minutes, with exponential back off"
(RegisterUsage); MeterUsage answers ThrottlingException and InternalServiceErrorException the same
way. The policy is capped exponential backoff with full jitter (the AWS Architecture Blog's
"Exponential Backoff And Jitter"): attempt *n* waits ``uniform(0, min(cap, base * 2**n))``. Full
jitter spreads a fleet that starts at once, so the service sees few extra requests per call.

The deadline bounds the whole call: no wait runs past it, and attempts near it get shorter
timeouts (each attempt is told the seconds left). Clock, sleep and randomness are injected, so
tests move time explicitly. An attempt raises `entrypoint.answers.Transient` to be retried and
anything else to stop at once; `BaseException` (signals) always passes through.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .answers import Transient
from .errors import RetriesExhaustedError
from .logs import event
from .signals import raise_if_interrupted

__all__ = ["MIN_ATTEMPT_SECONDS", "Attempted", "Backoff", "retry_transient"]

T = TypeVar("T")

# Below this much time left, another attempt cannot finish: give up rather than overrun.
MIN_ATTEMPT_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter."""

    base: float = 1.0
    cap: float = 30.0

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` consecutive failures (1 or more)."""
        return min(self.cap, self.base * 2.0 ** min(failures - 1, 64))

    def delay(self, failures: int, uniform: Callable[[float, float], float]) -> float:
        return uniform(0.0, self.ceiling(failures))


@dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """What the first successful attempt returned, and what it took to get there."""

    value: T
    attempts: int
    elapsed: float


def retry_transient(
    attempt: Callable[[float], T],
    *,
    operation: str,
    event_name: str,
    deadline: float,
    backoff: Backoff,
    remedy: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Attempted[T]:
    """Call ``attempt(seconds_left)`` until it returns, fails finally, or ``deadline`` passes.

    Guarantees: final errors propagate at once (one attempt); every `Transient` is logged as one
    warning line (event ``event_name``) naming the attempt, the error and the wait; no wait ends
    after the deadline; when time runs out, `RetriesExhaustedError` names ``operation``, the
    attempts, the elapsed time and the last transient error, with ``remedy``.
    """
    start = clock()
    end = start + deadline
    attempts = 0
    while True:
        raise_if_interrupted()  # a signal whose exception some native code swallowed
        remaining = end - clock()
        attempts += 1
        try:
            value = attempt(remaining)
        except Transient as failure:
            now = clock()
            remaining = end - now
            wait = min(backoff.delay(attempts, uniform), max(remaining, 0.0))
            if remaining - wait < MIN_ATTEMPT_SECONDS:
                raise RetriesExhaustedError(
                    f"{operation} did not succeed in {attempts} attempt"
                    f"{'s' if attempts != 1 else ''} over {now - start:.1f}s "
                    f"(deadline {deadline:g}s); last error: {failure}",
                    remedy=remedy,
                ) from None
            event(
                logging.WARNING,
                f"{operation} attempt {attempts} failed: {failure}; retrying in {wait:.2f}s "
                f"({remaining:.1f}s left of the {deadline:g}s deadline)",
                event=event_name,
                attempt=attempts,
                error=failure.code,
                wait_seconds=round(wait, 3),
                seconds_left=round(remaining, 3),
            )
            sleep(wait)
            continue
        return Attempted(value=value, attempts=attempts, elapsed=clock() - start)
