"""The pure arithmetic of metering: hours, quantities and idempotency tokens. No I/O, no clock.

Every limit is the API model's (botocore ``meteringmarketplace/2016-01-14/service-2.json``):

* UsageDimension: 1-255 characters;
* UsageQuantityAsDecimalString: ``^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,6})?$``, so at most 10 integer
  digits and 6 decimals, never negative;
* ClientToken: 1-64 characters ("We recommend that you use a UUID type of value");
* MeterUsage's Timestamp "is rounded down to the hour", and records "more than six hours after
  events occur ... won't be accepted".
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from entrypoint.errors import UsageError, one_line

__all__ = [
    "HOUR",
    "MAX_AGE",
    "MAX_QUANTITY",
    "check_dimension",
    "client_token",
    "format_quantity",
    "hour_start",
    "hour_text",
    "parse_quantity",
    "seconds_to_next_hour",
]

HOUR = 3600
MAX_AGE = 6 * HOUR
MAX_QUANTITY = Decimal("9999999999.999999")
_PLACES = 6
# Our namespace for name-based (version 5) UUIDs: the same inputs always give the same token.
_TOKEN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/marketplace-entrypoint/meter")


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


def client_token(*parts: object) -> str:
    """A deterministic ClientToken (a version 5 UUID, 36 characters) for these parts.

    The same task, product, dimension and hour always give the same token, so a retry or a
    restart that sends the hour again is idempotent at AWS.
    """
    return str(uuid.uuid5(_TOKEN_NAMESPACE, "\n".join(str(p) for p in parts)))
