"""The meter's core: quantities, hours, tokens and the book's rules, pure; then the same rules
as the usage store applies them, on a real SQLite file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from entrypoint import UsageError
from entrypoint.meter.book import (
    KEEP_SENT,
    Bucket,
    expire_before,
    forget_before,
    row_crc,
    seal_through,
    verify_bucket,
)
from entrypoint.meter.hours import (
    HOUR,
    MAX_MICROS,
    MAX_QUANTITY,
    check_dimension,
    check_product_code,
    client_token,
    format_quantity,
    from_micros,
    hour_start,
    hour_text,
    parse_quantity,
    to_micros,
    usage_time,
)
from entrypoint.meter.ledger import close_hours
from entrypoint.meter.opening import open_store
from entrypoint.meter.store import UsageStore

from .support import T0

H10 = int(T0) - 30 * 60  # 2026-11-21T10:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, Decimal(3)),
        ("17.00", Decimal("17.00")),
        (" 2.5 ", Decimal("2.5")),
        (0.1, Decimal("0.1")),  # the float's shortest repr, not its binary expansion
        (Decimal("0.000001"), Decimal("0.000001")),
        (0, Decimal(0)),
        ("9999999999.999999", MAX_QUANTITY),
    ],
)
def test_quantities_meter_usage_accepts(value: object, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "0 or more"),
        ("-0.5", "0 or more"),
        ("0.0000001", "more than 6 decimal places"),
        ("10000000000", "over MeterUsage's 9999999999.999999"),
        (float("nan"), "not a number"),
        ("inf", "not a finite number"),
        ("three", "not a number"),
        (True, "not a number"),
        (None, "not a number"),
    ],
)
def test_quantities_meter_usage_refuses(value: object, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        parse_quantity(value)


@pytest.mark.parametrize(
    ("quantity", "text"),
    [("3", "3"), ("17.00", "17"), ("1.50", "1.5"), ("100", "100"), ("0.000", "0"), ("1E+2", "100")],
)
def test_quantities_are_sent_in_the_models_canonical_form(quantity: str, text: str) -> None:
    assert format_quantity(Decimal(quantity)) == text
    assert re.fullmatch(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$", text)


def test_hours_round_down_in_utc() -> None:
    assert hour_start(T0) == H10
    assert hour_start(H10) == H10
    assert hour_start(H10 - 1) == H10 - HOUR
    assert hour_text(H10) == "2026-11-21T10:00Z"


@pytest.mark.parametrize("dimension", ["", "d" * 256, None, 5])
def test_dimensions_must_be_1_to_255_characters(dimension: object) -> None:
    with pytest.raises(UsageError, match="is not 1-255 characters"):
        check_dimension(dimension)


def test_client_tokens_are_deterministic_uuids_within_the_models_64_characters() -> None:
    token = client_token("task-1", "prod", "users", H10)
    assert token == client_token("task-1", "prod", "users", H10)
    assert len(token) == 36
    assert (
        len(
            {
                token,
                client_token("task-2", "prod", "users", H10),
                client_token("task-1", "prod", "gb", H10),
                client_token("task-1", "prod", "users", H10 + HOUR),
            }
        )
        == 4
    )


def test_quantities_are_stored_as_exact_millionths() -> None:
    assert to_micros(Decimal("1.5")) == 1_500_000
    assert to_micros(parse_quantity("0.000001")) == 1
    assert to_micros(MAX_QUANTITY) == MAX_MICROS < 2**63 - 1  # fits SQLite's INTEGER
    assert from_micros(1_500_000) == Decimal("1.5")
    assert from_micros(MAX_MICROS) == MAX_QUANTITY
    assert sum(to_micros(parse_quantity(0.1)) for _ in range(3)) == to_micros(Decimal("0.3"))


@pytest.mark.parametrize("code", ["", "a" * 256, "prod abc", "prod\n", None, 5])
def test_product_codes_follow_the_api_model(code: object) -> None:
    with pytest.raises(UsageError, match="is not 1-255 of"):
        check_product_code(code)


def test_usage_times() -> None:
    now = float(T0)
    assert usage_time(None, now) == now
    top = hour_start(now)
    assert usage_time(top - 6 * HOUR, top) == top - 6 * HOUR  # its hour began 6 hours ago: ok
    with pytest.raises(UsageError, match=r"is in the hour of 2026-11-21T04:00Z, which began more"):
        usage_time(now - 6 * HOUR + 1, now)  # within 6 hours, but not its hour
    assert usage_time(datetime.fromtimestamp(now - 60, timezone(timedelta(hours=2))), now) == (
        now - 60
    )
    with pytest.raises(UsageError, match="not within the last 6 hours"):
        usage_time(now - 6 * HOUR - 1, now)
    with pytest.raises(UsageError, match="not within the last 6 hours"):
        usage_time(datetime.fromtimestamp(now + 1, UTC), now)


# -- the book's rules, pure ------------------------------------------------------------------------


def test_only_ended_hours_are_sealed_unless_on_shutdown() -> None:
    assert seal_through(H10 + HOUR - 1, current_hour=False) == H10 - HOUR
    assert seal_through(H10 + HOUR, current_hour=False) == H10  # its end has come
    assert seal_through(H10 + HOUR - 1, current_hour=True) == H10


def test_the_six_hour_and_forgetting_limits() -> None:
    assert expire_before(H10 + 6 * HOUR) == H10  # exactly 6 hours old: still sendable
    assert expire_before(H10 + 6 * HOUR + 1) > H10
    assert KEEP_SENT == 7 * HOUR
    assert forget_before(H10 + 7 * HOUR + 1) > H10


GOOD = ("users", H10, 3_000_000, -3_000_000, "open", None, None, row_crc("users", H10))


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, "", "dimension is not 1-255"),
        (0, "gb", "fails its check value"),  # another dimension than the one checked
        (1, H10 + 1, "hour that is not an hour"),
        (1, float(H10), "hour that is not an hour"),
        (1, True, "hour that is not an hour"),
        (1, H10 + HOUR, "fails its check value"),
        (2, -1, "quantity out of range"),
        (2, MAX_MICROS + 1, "quantity out of range"),
        (2, 3.0, "quantity out of range"),
        (3, -3_000_001, "quantity that fails its check"),
        (4, "lost", "unknown state"),
        (4, "sent", "record id that fails its state"),
        (6, 5, "malformed error"),
        (7, 0, "fails its check value"),
    ],
)
def test_a_row_that_fails_a_check_is_refused(index: int, value: object, reason: str) -> None:
    assert verify_bucket(GOOD) == Bucket("users", H10, 3_000_000, "open")
    row: list[object] = list(GOOD)
    row[index] = value
    with pytest.raises(ValueError, match=reason):
        verify_bucket(tuple(row))


def test_bucket_tokens_are_the_client_tokens() -> None:
    bucket = Bucket("users", H10, 1, "sealed")
    assert bucket.token("task-1", "prod") == client_token("task-1", "prod", "users", H10)


# -- the same rules in the store ------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[UsageStore]:
    opened = open_store(tmp_path / "usage.db", product_code="prod", dimensions=("users", "gb"))
    yield opened
    opened.close()


def book(store: UsageStore) -> list[tuple[str, int, Decimal, str]]:
    return [
        (b.dimension, b.hour, b.quantity, b.state)
        for b in store.buckets(("open", "sealed", "sent", "refused", "expired"))
    ]


def test_the_book_sums_per_dimension_and_hour(store: UsageStore) -> None:
    store.add("users", 3_000_000, H10)
    store.add("users", 1_500_000, H10)
    store.add("gb", 1_000_000, H10)
    store.add("users", 2_000_000, H10 + HOUR)
    assert [(b.dimension, b.hour, b.quantity) for b in store.pending()] == [
        ("gb", H10, Decimal(1)),
        ("users", H10, Decimal("4.5")),
        ("users", H10 + HOUR, Decimal(2)),
    ]


def test_the_store_seals_only_ended_hours_unless_on_shutdown(store: UsageStore) -> None:
    store.add("users", 1, H10)
    assert close_hours(store, H10 + HOUR - 1, current_hour=False) == []
    assert [b.hour for b in close_hours(store, H10 + HOUR - 1, current_hour=True)] == [H10]


def test_future_hours_are_never_sealed(store: UsageStore) -> None:
    store.add("users", 1, H10 + HOUR)
    assert close_hours(store, H10 + 60, current_hour=True) == []


def test_usage_for_a_sealed_hour_is_carried_into_the_next_open_hour(store: UsageStore) -> None:
    store.add("users", 1_000_000, H10)
    (sealed,) = close_hours(store, H10 + 60, current_hour=True)
    store.mark_sent(sealed, "record-1")
    assert store.add("users", 2_000_000, H10) == H10 + HOUR
    assert book(store) == [
        ("users", H10, Decimal(1), "sent"),  # frozen
        ("users", H10 + HOUR, Decimal(2), "open"),
    ]


def test_an_hour_over_the_maximum_is_refused_and_nothing_counted(store: UsageStore) -> None:
    store.add("users", MAX_MICROS, H10)
    with pytest.raises(UsageError, match=r"would total 10000000000\.999999, over MeterUsage's"):
        store.add("users", 1_000_000, H10)
    assert book(store) == [("users", H10, MAX_QUANTITY, "open")]


def test_expired_hours_are_kept_as_lost_and_old_sent_hours_forgotten(store: UsageStore) -> None:
    store.add("users", 1, H10)
    store.add("gb", 1, H10)
    (gb, _) = close_hours(store, H10 + HOUR, current_hour=False)
    store.mark_sent(gb, "record-1")
    assert store.expire(H10 + 6 * HOUR) == []  # exactly 6 hours: still ok
    assert [b.dimension for b in store.expire(H10 + 6 * HOUR + 1)] == ["users"]
    assert [(b.dimension, b.state) for b in store.lost()] == [("users", "expired")]
    store.forget(H10 + 7 * HOUR + 1)
    assert book(store) == [("users", H10, Decimal("0.000001"), "expired")]  # lost stays


def test_a_sealed_quantity_never_changes(store: UsageStore) -> None:
    store.add("users", 5, H10)
    (sealed,) = close_hours(store, H10 + HOUR, current_hour=False)
    store.add("users", 7, H10)  # carried
    store.mark_sent(sealed._replace(micros=12), "record-x")  # not the frozen quantity: ignored
    assert book(store)[0] == ("users", H10, Decimal("0.000005"), "sealed")
