"""The emulator's fault injection and rate limiter, on their own (the fault matrix uses them)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from entrypoint.emulator import Emulator
from entrypoint.emulator.faults import Fault, TokenBucket

from .conftest import PRODUCT
from .support import metering_client


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token refilled
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now += 100  # never more than the burst saved up
    assert sum(bucket.take() for _ in range(10)) == 3


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_token_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        TokenBucket(rate=rate, burst=burst)


def client(emulator: Emulator) -> Any:
    return metering_client(emulator)


def test_rate_limit_throttles_above_the_rate_and_records_it(emulator: Emulator) -> None:
    emulator.faults.rate_limit(rate=0.001, burst=2)
    metering = client(emulator)
    for _ in range(2):
        assert "Signature" in metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    with pytest.raises(ClientError, match="ThrottlingException"):
        metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert [c.error for c in emulator.calls()] == [None, None, "ThrottlingException"]
    emulator.faults.rate_limit(None)
    assert "Signature" in metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)


def test_faults_count_down_queue_up_and_come_after_throttling(emulator: Emulator) -> None:
    emulator.configure(PRODUCT, throttle=1)
    emulator.faults.inject(PRODUCT, Fault.UNKNOWN_4XX, times=1)
    emulator.faults.inject(PRODUCT, Fault.UNKNOWN_5XX, times=1, value=500)
    metering = client(emulator)
    for code in ("ThrottlingException", "UnknownFutureException", "UnknownOutageException"):
        with pytest.raises(ClientError) as caught:
            metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
        assert caught.value.response["Error"]["Code"] == code
    assert "Signature" in metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    errors = [c.error for c in emulator.calls()]
    assert errors == ["ThrottlingException", "fault:unknown-4xx", "fault:unknown-5xx", None]
    assert [c.status for c in emulator.calls()] == [400, 400, 500, 200]


def test_faults_apply_to_their_product_only_and_clear(emulator: Emulator) -> None:
    emulator.configure("prod-other")
    emulator.faults.inject(PRODUCT, Fault.EMPTY_BODY)
    metering = client(emulator)
    assert "Signature" in metering.register_usage(ProductCode="prod-other", PublicKeyVersion=1)
    assert "Signature" not in metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    emulator.faults.clear(PRODUCT)
    assert "Signature" in metering.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)


def test_a_huge_body_is_streamed_not_built(emulator: Emulator) -> None:
    """64 MiB on the wire from one 64 KiB piece: the emulator itself stays small, and the
    record says how much was sent."""
    emulator.faults.inject(PRODUCT, Fault.HUGE_BODY, times=1)
    answer = client(emulator).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert "Signature" in answer  # plain botocore reads it all (the entrypoint caps it)
    record = emulator.calls()[0]
    assert record.error == "fault:huge-body"
    assert 64 * 1024 * 1024 - 65536 < record.response["bytes"] <= 64 * 1024 * 1024
