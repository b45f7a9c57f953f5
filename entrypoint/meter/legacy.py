"""The JSON state file of earlier versions, read once and strictly, to be imported into the store.

Earlier `Meter`s kept their book in a JSON file (``{"format": "marketplace-entrypoint-meter",
"version": 1, "product_code", "instance_id", "buckets": [...]}``). Such a file is trusted no
further than it can be checked: it was read as it was, and ``NaN``, ``Infinity``, ``1e400`` or
``-5`` quantities were sent to MeterUsage, ``"hour": true`` became 1970, duplicate buckets dropped
usage, and a signalling NaN or deep nesting crashed the meter. Here every value must be what the
old meter wrote (a canonical quantity string, an integer hour on the hour, a known state, the
ClientToken the old meter derived, one bucket per dimension and hour), or the whole file is
refused with a `ConfigurationError` naming what is wrong; nothing is ever imported in part.

Pure: `parse_state` takes the file's bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from entrypoint.errors import ConfigurationError, UsageError, one_line

from .book import LAST_HOUR, Bucket
from .hours import HOUR, check_product_code, client_token, parse_quantity, to_micros

__all__ = ["FORMAT", "MAX_BYTES", "LegacyState", "looks_like_json", "parse_state"]

FORMAT = "marketplace-entrypoint-meter"
VERSION = 1
# 24 dimensions (AWS's limit per product) x 8 hours of buckets is a few kilobytes; anything near
# this size was not written by the meter.
MAX_BYTES = 4 * 1024 * 1024
# UsageQuantityAsDecimalString in the API model, as the old meter wrote it.
_QUANTITY = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?")
_INSTANCE = re.compile(r"[A-Za-z0-9_.:/=+@-]{1,200}")
_RECORD_ID = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class LegacyState:
    product_code: str
    instance_id: str
    buckets: tuple[Bucket, ...]


def looks_like_json(head: bytes) -> bool:
    """Whether a file's first bytes are a JSON object (the old format), not SQLite's header."""
    return head.lstrip(b" \t\r\n")[:1] == b"{"


class _Refused(ValueError):  # noqa: N818 - internal: always turned into ConfigurationError
    pass


def _no_constants(name: str) -> Any:  # noqa: ANN401 - json's parse_constant hook
    raise _Refused(f"holds {name}, which is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Refused(f"repeats the member {one_line(key, 40)!r}")
        seen[key] = value
    return seen


def parse_state(raw: bytes, path: object) -> LegacyState:
    """The old state file's contents, every value checked, or `ConfigurationError`."""
    try:
        return _parse(raw)
    except _Refused as exc:
        reason = str(exc)
    except (UsageError, TypeError, KeyError, AttributeError) as exc:
        reason = f"is damaged ({type(exc).__name__}: {exc})"
    except RecursionError:
        reason = "is nested too deeply"
    except ValueError as exc:
        reason = f"is not JSON ({one_line(exc, 80)})"
    raise ConfigurationError(
        f"the meter state file {one_line(path, 200)} {one_line(reason, 200)}",
        remedy="it holds usage not yet reported: fix it, or move it aside to start afresh",
    )


def _parse(raw: bytes) -> LegacyState:
    if len(raw) > MAX_BYTES:
        raise _Refused(f"is larger than {MAX_BYTES} bytes")
    data = json.loads(
        raw.decode("utf-8"),
        object_pairs_hook=_unique_keys,
        parse_constant=_no_constants,
    )
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _Refused("is not a meter state file")
    version = data.get("version")
    if type(version) is not int or version != VERSION:
        raise _Refused(f"has version {one_line(version, 20)}, not {VERSION}")
    extra = set(data) - {"format", "version", "product_code", "instance_id", "buckets"}
    if extra:
        raise _Refused(f"has unknown members: {one_line(sorted(extra), 80)}")
    product_code = check_product_code(data["product_code"])
    instance_id = data["instance_id"]
    if not isinstance(instance_id, str) or _INSTANCE.fullmatch(instance_id) is None:
        raise _Refused("has an instance_id that is not 1-200 plain characters")
    entries = data["buckets"]
    if not isinstance(entries, list):
        raise _Refused("has buckets that are not a list")
    buckets: dict[tuple[str, int], Bucket] = {}
    for entry in entries:
        bucket = _bucket(entry, product_code, instance_id)
        key = (bucket.dimension, bucket.hour)
        if key in buckets:
            raise _Refused(f"has two buckets for {bucket.dimension!r} in one hour")
        buckets[key] = bucket
    return LegacyState(product_code, instance_id, tuple(buckets.values()))


def _bucket(entry: object, product_code: str, instance_id: str) -> Bucket:
    if not isinstance(entry, dict) or set(entry) != {
        "dimension",
        "hour",
        "quantity",
        "token",
        "state",
        "record_id",
    }:
        raise _Refused("has a bucket that is not one the meter wrote")
    dimension, hour, quantity = entry["dimension"], entry["hour"], entry["quantity"]
    if not isinstance(dimension, str) or not 1 <= len(dimension) <= 255:
        raise _Refused("has a bucket whose dimension is not 1-255 characters")
    if type(hour) is not int or not 0 <= hour <= LAST_HOUR or hour % HOUR:
        raise _Refused(f"has a bucket of {one_line(dimension, 60)!r} whose hour is not an hour")
    if not isinstance(quantity, str) or _QUANTITY.fullmatch(quantity) is None:
        raise _Refused(
            f"has a bucket of {one_line(dimension, 60)!r} whose quantity "
            f"{one_line(quantity, 40)!r} is not one MeterUsage takes"
        )
    if entry["token"] != client_token(instance_id, product_code, dimension, hour):
        raise _Refused(f"has a bucket of {one_line(dimension, 60)!r} with a foreign ClientToken")
    state, record_id = entry["state"], entry["record_id"]
    if state not in {"open", "sealed", "sent"}:
        raise _Refused(f"has a bucket in the unknown state {one_line(state, 20)!r}")
    if state == "sent":
        if not isinstance(record_id, str) or _RECORD_ID.fullmatch(record_id) is None:
            raise _Refused(f"has a sent bucket of {one_line(dimension, 60)!r} without a record")
    elif record_id is not None:
        raise _Refused(f"has an unsent bucket of {one_line(dimension, 60)!r} with a record")
    micros = to_micros(parse_quantity(quantity))
    return Bucket(dimension, hour, micros, state, record_id if state == "sent" else None)
