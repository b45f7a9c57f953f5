"""RegisterUsage with a fresh nonce per attempt, retried with backoff inside a deadline.

AWS "strongly recommends implementing retries for up to 30 minutes, with exponential back off".
The policy is capped exponential backoff with full jitter (the AWS Architecture Blog's "Exponential
Backoff And Jitter"): attempt *n* waits ``uniform(0, min(cap, base * 2**n))``. Full jitter spreads
a fleet that starts at once, so the service sees few extra requests per registration.

The deadline bounds the whole registration: no wait runs past it, and attempts near it get
shorter timeouts. Clock, sleep and randomness are injected, so tests move time explicitly.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import RetriesExhaustedError
from .logs import event
from .metering import MeteringClient, RegisterUsageAnswer, Transient

__all__ = ["Backoff", "Registration", "new_nonce", "register_with_retries"]

# 32 random bytes (256 bits) as 43 base64url characters: well inside the API's 255-character
# Nonce limit and above the 128 bits issue 2 asks for.
NONCE_BYTES = 32
# Below this much time left, another attempt cannot finish: give up rather than overrun.
MIN_ATTEMPT_SECONDS = 0.1


def new_nonce() -> str:
    """A fresh nonce from the operating system's CSPRNG."""
    return secrets.token_urlsafe(NONCE_BYTES)


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
class Registration:
    """A RegisterUsage answer with the nonce its request carried."""

    answer: RegisterUsageAnswer
    nonce: str
    attempts: int
    elapsed: float


def register_with_retries(
    client: MeteringClient,
    *,
    product_code: str,
    public_key_version: int,
    deadline: float,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    uniform: Callable[[float, float], float] = random.uniform,
    nonce_factory: Callable[[], str] = new_nonce,
) -> Registration:
    """Call RegisterUsage until it answers, fails finally, or ``deadline`` seconds pass.

    Returns the first successful answer (unverified). Raises the client's final errors at once,
    and `RetriesExhaustedError` naming the last transient error when time runs out.
    """
    start = clock()
    end = start + deadline
    attempts = 0
    while True:
        remaining = end - clock()
        nonce = nonce_factory()
        attempts += 1
        try:
            answer = client.register_usage(
                product_code=product_code,
                public_key_version=public_key_version,
                nonce=nonce,
                timeout=remaining,
            )
        except Transient as failure:
            now = clock()
            remaining = end - now
            wait = min(backoff.delay(attempts, uniform), max(remaining, 0.0))
            if remaining - wait < MIN_ATTEMPT_SECONDS:
                raise RetriesExhaustedError(
                    f"RegisterUsage did not succeed in {attempts} attempt"
                    f"{'s' if attempts != 1 else ''} over {now - start:.1f}s "
                    f"(deadline {deadline:g}s); last error: {failure}",
                    remedy="check egress to the Metering endpoint and the task's credentials, "
                    "or raise MARKETPLACE_RETRY_DEADLINE",
                ) from None
            event(
                logging.WARNING,
                f"RegisterUsage attempt {attempts} failed: {failure}; retrying in {wait:.2f}s "
                f"({remaining:.1f}s left of the {deadline:g}s deadline)",
                event="register_usage_retry",
                attempt=attempts,
                error=failure.code,
                wait_seconds=round(wait, 3),
                seconds_left=round(remaining, 3),
            )
            sleep(wait)
            continue
        return Registration(answer=answer, nonce=nonce, attempts=attempts, elapsed=clock() - start)
