"""MeterUsage for custom-dimension container products: the task's usage store, an in-process
meter, a DryRun check, and the ``marketplace-entrypoint meter`` command.

* `Meter`: sums usage per dimension and hour in the task's usage store, shared by every process
  of the task, and reports each hour once, idempotently (see `entrypoint.meter.meter`).
* `open_store`: the store itself, for callers that add usage without a `Meter`
  (``meter add`` is one).
* `meter_dry_run`: a MeterUsage DryRun (permissions, product code, entitlement, dimension),
  for start-up checks and a ``check`` command.
* `send_usage`: one hour of one dimension, with retries, for callers that keep their own books.

Attributes are imported on first use (PEP 562): ``meter add`` imports the store and not the AWS
SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .meter import Meter
    from .opening import open_store
    from .send import DryRunResult, meter_dry_run, send_usage
    from .sender import FailedUsage, FlushReport, SentUsage

__all__ = [
    "DryRunResult",
    "FailedUsage",
    "FlushReport",
    "Meter",
    "SentUsage",
    "meter_dry_run",
    "open_store",
    "send_usage",
]

_HOMES = {
    "DryRunResult": "send",
    "FailedUsage": "sender",
    "FlushReport": "sender",
    "Meter": "meter",
    "SentUsage": "sender",
    "meter_dry_run": "send",
    "open_store": "opening",
    "send_usage": "send",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - PEP 562: any public attribute
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
