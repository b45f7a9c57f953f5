"""The meter's pure core: quantities, hours, tokens and the book, with no I/O and no clock."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from entrypoint import UsageError
from entrypoint.meter.book import Bucket, UsageBook
from entrypoint.meter.hours import (
    HOUR,
    MAX_QUANTITY,
    check_dimension,
    client_token,
    format_quantity,
    hour_start,
    hour_text,
    parse_quantity,
)

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


def test_the_book_sums_per_dimension_and_hour() -> None:
    book = UsageBook("prod", "task-1")
    book.add("users", Decimal(3), H10)
    book.add("users", Decimal("1.5"), H10)
    book.add("gb", Decimal(1), H10)
    book.add("users", Decimal(2), H10 + HOUR)
    assert [(b.dimension, b.hour, b.quantity) for b in book.unsent()] == [
        ("gb", H10, Decimal(1)),
        ("users", H10, Decimal("4.5")),
        ("users", H10 + HOUR, Decimal(2)),
    ]


def test_only_ended_hours_are_sealed_unless_on_shutdown() -> None:
    book = UsageBook("prod", "task-1")
    book.add("users", Decimal(1), H10)
    assert book.seal(H10 + HOUR - 1, current_hour=False) == []
    assert [b.hour for b in book.seal(H10 + HOUR - 1, current_hour=True)] == [H10]


def test_future_hours_are_never_sealed() -> None:
    book = UsageBook("prod", "task-1")
    book.add("users", Decimal(1), H10 + HOUR)
    assert book.seal(H10 + 60, current_hour=True) == []


def test_usage_for_a_sealed_hour_is_carried_into_the_next_open_hour() -> None:
    book = UsageBook("prod", "task-1")
    book.add("users", Decimal(1), H10)
    (sealed,) = book.seal(H10 + 60, current_hour=True)
    book.mark_sent(sealed, "record-1")
    assert book.add("users", Decimal(2), H10) == H10 + HOUR
    assert sealed.quantity == 1  # frozen


def test_expired_hours_are_dropped_and_old_sent_hours_forgotten() -> None:
    book = UsageBook("prod", "task-1")
    book.add("users", Decimal(1), H10)
    book.add("gb", Decimal(1), H10)
    (gb, _) = book.seal(H10 + HOUR, current_hour=False)
    book.mark_sent(gb, "record-1")
    assert [b.dimension for b in book.expire(H10 + 6 * HOUR)] == []  # exactly 6 hours: still ok
    assert [b.dimension for b in book.expire(H10 + 6 * HOUR + 1)] == ["users"]
    assert list(book.buckets) == [("gb", H10)]
    book.expire(H10 + 7 * HOUR + 1)
    assert book.buckets == {}


def test_the_book_round_trips_through_json() -> None:
    book = UsageBook("prod", "task-1")
    book.add("users", Decimal("2.25"), H10)
    (bucket,) = book.seal(H10 + HOUR, current_hour=False)
    again = UsageBook.from_json(book.to_json())
    assert again.buckets == book.buckets
    assert isinstance(again.buckets[bucket.key], Bucket)
