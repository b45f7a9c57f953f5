"""The pure arithmetic of metering: hours, quantities and idempotency tokens. No I/O, no clock.

Every limit is the API model's (botocore ``meteringmarketplace/2016-01-14/service-2.json``):

* UsageDimension: 1-255 characters;
* UsageQuantityAsDecimalString: ``^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,6})?$``, so at most 10 integer
  digits and 6 decimals, never negative;
* ClientToken: 1-64 characters ("We recommend that you use a UUID type of value");
* MeterUsage's Timestamp "is rounded down to the hour", and records "more than six hours after
  events occur ... won't be accepted".

Quantities are stored as integer millionths ("micros"): 6 decimals exactly, and the largest
quantity, 9999999999.999999, is 9,999,999,999,999,999 micros, below SQLite's 2**63 - 1.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from entrypoint.errors import UsageError, one_line

__all__ = [
    "HOUR",
    "MAX_AGE",
    "MAX_MICROS",
    "MAX_QUANTITY",
    "check_dimension",
    "check_product_code",
    "client_token",
    "format_quantity",
    "from_micros",
    "hour_start",
    "hour_text",
    "parse_quantity",
    "parse_timestamp",
    "seconds_to_next_hour",
    "to_micros",
    "usage_time",
]

HOUR = 3600
MAX_AGE = 6 * HOUR
MAX_QUANTITY = Decimal("9999999999.999999")
_PLACES = 6
MAX_MICROS = 9_999_999_999_999_999  # MAX_QUANTITY in millionths
# ProductCode in the Metering API model (botocore service-2.json): 1..255 of [-a-zA-Z0-9/=:_.@].
# entrypoint.config holds the same pattern; it is repeated here so that `meter add` does not
# import the bootstrap's configuration (and with it cryptography) on its fast path.
_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")
# The latest usage time any caller may name: datetime's own limit, 9999-12-31T23:59:59Z.
_LAST_TIME = 253_402_300_799.0
# Our namespace for name-based (version 5) UUIDs: the same inputs always give the same token.
_NAMESPACE_URL = "https://github.com/marketplace-entrypoint/meter"


def hour_start(timestamp: float) -> int:
    """The start of the UTC hour ``timestamp`` (epoch seconds) falls in."""
    return int(timestamp // HOUR) * HOUR


def seconds_to_next_hour(now: float) -> float:
    """How long from ``now`` until the current UTC hour ends (when its usage can be sent)."""
    return hour_start(now) + HOUR - now


def hour_text(hour: int) -> str:
    """``2026-11-21T10:00Z``: how hours appear in logs and diagnoses."""
    return datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_quantity(value: object) -> Decimal:
    """A usage quantity as an exact `Decimal`, or `UsageError` saying what is wrong with it.

    Accepts ``int``, ``Decimal``, ``str`` and ``float`` (by its shortest repr, so 0.1 is 0.1);
    refuses booleans, negatives, non-finite values, more than 6 decimals and more than
    9999999999.999999.
    """
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float | str):
        raise UsageError(f"quantity of type {type(value).__name__} is not a number")
    quantity = _decimal(value)
    if quantity is None:
        raise UsageError(f"quantity {one_line(value, 40)!r} is not a number")
    if not quantity.is_finite() or quantity < 0:
        raise UsageError(f"quantity {one_line(value, 40)!r} is not a finite number of 0 or more")
    exponent = quantity.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_PLACES:
        raise UsageError(
            f"quantity {one_line(value, 40)!r} has more than {_PLACES} decimal places",
            remedy="MeterUsage takes at most 6 decimals; round the quantity",
        )
    if quantity > MAX_QUANTITY:
        raise UsageError(f"quantity {one_line(value, 40)!r} is over MeterUsage's {MAX_QUANTITY}")
    return quantity


def _decimal(value: int | Decimal | float | str) -> Decimal | None:
    if isinstance(value, float):
        # The shortest repr, so that 0.1 is 0.1 and not 0.1000000000000000055511151231257827.
        return Decimal(repr(value)) if math.isfinite(value) else None
    try:
        return Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        return None


def format_quantity(quantity: Decimal) -> str:
    """The canonical spelling the API model's pattern accepts: ``3``, ``1.5``, ``0.000001``."""
    text = format(quantity.normalize(), "f")
    return "0" if text in {"0", "-0"} else text


def check_dimension(dimension: object) -> str:
    """A dimension name within the model's 1-255 characters, or `UsageError`."""
    if (
        not isinstance(dimension, str) or not 1 <= len(dimension) <= 255
    ):  # UsageDimension: min 1, max 255
        raise UsageError(
            f"dimension {one_line(dimension, 60)!r} is not 1-255 characters",
            remedy="use the dimension's API name as the Management Portal shows it",
        )
    return dimension


def check_product_code(product_code: object) -> str:
    """A product code of the API model's shape, or `UsageError`."""
    if not isinstance(product_code, str) or _PRODUCT_CODE.fullmatch(product_code) is None:
        raise UsageError(
            f"product code {one_line(product_code, 60)!r} is not 1-255 of [-a-zA-Z0-9/=:_.@]",
            remedy="use the product code from the AWS Marketplace Management Portal",
        )
    return product_code


def to_micros(quantity: Decimal) -> int:
    """An exact quantity from `parse_quantity` as integer millionths."""
    return int(quantity.scaleb(_PLACES))


def from_micros(micros: int) -> Decimal:
    """Integer millionths back to the exact quantity (``1500000`` -> ``1.5``)."""
    return (Decimal(micros).scaleb(-_PLACES)).normalize()


def usage_time(at: object, now: float) -> float:
    """When usage happened, as epoch seconds: ``now`` for None, an aware `datetime`, or epoch
    seconds. `UsageError` for anything else, for a naive datetime, a non-finite or unreadable
    number, a time in the future, and a time whose hour began more than MeterUsage's 6 hours
    ago (its record carries the hour's start, which AWS would refuse: the usage could never be
    billed)."""
    if at is None:
        return now
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise UsageError(
                f"usage time {at.isoformat()} has no time zone",
                remedy="pass an aware datetime, such as datetime.now(UTC)",
            )
        when = at.timestamp()
    elif isinstance(at, int | float | Decimal) and not isinstance(at, bool):
        try:
            when = float(at)
        except (OverflowError, ValueError, ArithmeticError):
            when = math.nan
        if not math.isfinite(when) or not 0 <= when <= _LAST_TIME:
            raise UsageError(f"usage time {one_line(at, 40)!r} is not a time in epoch seconds")
    else:
        raise UsageError(f"usage time of type {type(at).__name__} is not a time")
    if when > now or now - when > MAX_AGE:
        raise UsageError(
            f"usage time {datetime.fromtimestamp(when, UTC).isoformat()} is not within the "
            "last 6 hours",
            remedy="MeterUsage takes usage at most 6 hours old and never from the future",
        )
    if now - hour_start(when) > MAX_AGE:  # its record, stamped with the hour, would be refused
        raise UsageError(
            f"usage time {datetime.fromtimestamp(when, UTC).isoformat()} is in the hour of "
            f"{hour_text(hour_start(when))}, which began more than 6 hours ago",
            remedy="MeterUsage refuses an hour's record more than 6 hours after the hour began",
        )
    return when


def client_token(*parts: object) -> str:
    """A deterministic ClientToken (a version 5 UUID, 36 characters) for these parts.

    The same task, product, dimension and hour always give the same token, so a retry or a
    restart that sends the hour again is idempotent at AWS.
    """
    import uuid  # here: uuid loads OpenSSL, which `meter add` never needs

    namespace = uuid.uuid5(uuid.NAMESPACE_URL, _NAMESPACE_URL)
    return str(uuid.uuid5(namespace, "\n".join(str(p) for p in parts)))


def parse_timestamp(text: str | None, now: float) -> float:
    """``--timestamp`` as epoch seconds; `UsageError` if it is not a time: not ISO 8601 or a
    number, not finite (``nan``, ``inf``), or outside 1970-9999 (``1e20``)."""
    if text is None:
        return now
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        except (ValueError, OverflowError):
            raise UsageError(
                f"--timestamp {one_line(text, 60)!r} is not an ISO 8601 time or epoch seconds",
                remedy="for example 2026-11-21T10:00:00Z",
            ) from None
    if not math.isfinite(seconds) or not 0 <= seconds <= _LAST_TIME:
        raise UsageError(
            f"--timestamp {one_line(text, 60)!r} is not a time between 1970 and 9999",
            remedy="give epoch seconds or an ISO 8601 time, such as 2026-11-21T10:00:00Z",
        )
    return seconds
