"""RegisterUsage with a fresh nonce per attempt, retried with backoff inside a deadline.

AWS "strongly recommends implementing retries for up to 30 minutes, with exponential back off".
The loop itself (capped exponential backoff with full jitter, the deadline, the log lines) is
`entrypoint.retry`, shared with MeterUsage; this module adds what is particular to RegisterUsage:
a fresh nonce for every attempt, remembered with the answer it belongs to.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .answers import RegisterUsageAnswer
from .metering import MeteringClient
from .retry import MIN_ATTEMPT_SECONDS, Backoff, retry_transient

__all__ = ["MIN_ATTEMPT_SECONDS", "Backoff", "Registration", "new_nonce", "register_with_retries"]

# 32 random bytes (256 bits) as 43 base64url characters: well inside the API's 255-character
# Nonce limit and above the 128 bits issue 2 asks for.
NONCE_BYTES = 32


def new_nonce() -> str:
    """A fresh nonce from the operating system's CSPRNG."""
    return secrets.token_urlsafe(NONCE_BYTES)


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

    Returns the first successful answer (unverified) with the nonce of the attempt that got it.
    Raises the client's final errors at once, and `RetriesExhaustedError` naming the last
    transient error when time runs out.
    """

    def attempt(remaining: float) -> tuple[RegisterUsageAnswer, str]:
        nonce = nonce_factory()
        answer = client.register_usage(
            product_code=product_code,
            public_key_version=public_key_version,
            nonce=nonce,
            timeout=remaining,
        )
        return answer, nonce

    outcome = retry_transient(
        attempt,
        operation="RegisterUsage",
        event_name="register_usage_retry",
        deadline=deadline,
        backoff=backoff,
        remedy="check egress to the Metering endpoint and the task's credentials, "
        "or raise MARKETPLACE_RETRY_DEADLINE",
        clock=clock,
        sleep=sleep,
        uniform=uniform,
    )
    answer, nonce = outcome.value
    return Registration(
        answer=answer, nonce=nonce, attempts=outcome.attempts, elapsed=outcome.elapsed
    )
