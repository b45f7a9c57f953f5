"""The retry loop, with time moved explicitly: backoff shape, deadline, fresh nonces."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from entrypoint import ConfigurationError, ExitCode, RetriesExhaustedError
from entrypoint.answers import RegisterUsageAnswer, Transient
from entrypoint.register import Backoff, new_nonce, register_with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedClient:
    """Answers from a script: exceptions are raised, answers returned; each call costs time."""

    def __init__(self, clock: FakeClock, script: list[object], cost: float = 0.0) -> None:
        self.clock = clock
        self.script = script
        self.cost = cost
        self.nonces: list[str] = []
        self.timeouts: list[float | None] = []

    def register_usage(
        self,
        *,
        product_code: str,
        public_key_version: int,
        nonce: str,
        timeout: float | None = None,
    ) -> RegisterUsageAnswer:
        self.nonces.append(nonce)
        self.timeouts.append(timeout)
        self.clock.now += self.cost
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, RegisterUsageAnswer)
        return step


ANSWER = RegisterUsageAnswer(signature="a.b.c")


def run(
    client: ScriptedClient,
    clock: FakeClock,
    deadline: float = 1800,
    backoff: Backoff | None = None,
    uniform: Callable[[float, float], float] = lambda _lo, hi: hi,
) -> object:
    return register_with_retries(
        client,
        product_code="prod",
        public_key_version=1,
        deadline=deadline,
        backoff=backoff or Backoff(base=1, cap=30),
        clock=clock,
        sleep=clock.sleep,
        uniform=uniform,
    )


def test_first_answer_is_returned_with_its_nonce() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [ANSWER])
    registration = run(client, clock)
    assert registration.attempts == 1  # type: ignore[attr-defined]
    assert registration.nonce == client.nonces[0]  # type: ignore[attr-defined]
    assert clock.sleeps == []


def test_transient_failures_back_off_exponentially_up_to_the_cap() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [Transient("ThrottlingException")] * 8 + [ANSWER])
    registration = run(client, clock)
    assert registration.attempts == 9  # type: ignore[attr-defined]
    assert clock.sleeps == [1, 2, 4, 8, 16, 30, 30, 30]


def test_full_jitter_draws_between_zero_and_the_ceiling() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [Transient("ThrottlingException")] * 4 + [ANSWER])
    draws: list[tuple[float, float]] = []

    def uniform(lo: float, hi: float) -> float:
        draws.append((lo, hi))
        return (lo + hi) / 2

    run(client, clock, uniform=uniform)
    assert draws == [(0, 1), (0, 2), (0, 4), (0, 8)]


def test_every_attempt_has_a_fresh_nonce() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [Transient("ThrottlingException")] * 5 + [ANSWER])
    registration = run(client, clock)
    assert len(set(client.nonces)) == 6
    assert registration.nonce == client.nonces[-1]  # type: ignore[attr-defined]


def test_final_error_stops_at_once() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [ConfigurationError("InvalidProductCodeException")])
    with pytest.raises(ConfigurationError, match="InvalidProductCode"):
        run(client, clock)
    assert clock.sleeps == []
    assert len(client.nonces) == 1


def test_deadline_ends_retries_without_overrunning_it() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [Transient("ThrottlingException", "Rate exceeded")], cost=0.5)
    with pytest.raises(RetriesExhaustedError) as caught:
        run(client, clock, deadline=100)
    assert clock.now - 1000.0 <= 100
    assert caught.value.exit_code == ExitCode.RETRIES_EXHAUSTED
    assert re.search(
        r"did not succeed in \d+ attempts over \d+\.\ds \(deadline 100s\); "
        r"last error: ThrottlingException: Rate exceeded",
        caught.value.reason,
    )


def test_attempt_timeouts_shrink_to_the_time_left() -> None:
    clock = FakeClock()
    client = ScriptedClient(clock, [Transient("ReadTimeoutError")], cost=1.0)
    with pytest.raises(RetriesExhaustedError):
        run(client, clock, deadline=10, backoff=Backoff(base=1, cap=1))
    assert client.timeouts[0] == 10
    assert all(t is not None and t <= 10 for t in client.timeouts)
    assert client.timeouts == sorted(client.timeouts, reverse=True)  # type: ignore[type-var]


def test_interrupts_are_not_swallowed() -> None:
    class Stop(BaseException):
        pass

    clock = FakeClock()
    client = ScriptedClient(clock, [Stop()])
    with pytest.raises(Stop):
        run(client, clock)


def test_backoff_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=10)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 10]
    assert backoff.ceiling(10_000) == 10


def test_nonce_is_fresh_csprng_output() -> None:
    nonces = {new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    for nonce in list(nonces)[:10]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce)  # 256 bits, base64url, <= 255 chars


def test_a_signal_whose_exception_was_swallowed_still_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Native code on the stack when a signal arrives may drop the handler's exception (seen in
    CI: a SIGTERM during imports vanished and the bootstrap went on retrying). The handler also
    records the signal, and the retry loop checks the record before every attempt."""
    import os
    import signal

    from entrypoint import signals

    monkeypatch.setattr(signals, "_received", None)
    clock = FakeClock()
    client = ScriptedClient(clock, [Transient("ThrottlingException")])
    with signals.raise_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here and raises ...
        except BaseException:  # noqa: BLE001, S110 - ... and a careless library drops it
            pass
        with pytest.raises(signals.Interrupted) as caught:
            run(client, clock)
    assert caught.value.signum == signal.SIGTERM
    assert client.nonces == []  # stopped before the first attempt
    with pytest.raises(signals.Interrupted):
        signals.raise_if_interrupted()  # and the check before exec would stop it too
