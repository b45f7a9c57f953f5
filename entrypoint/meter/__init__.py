"""MeterUsage for custom-dimension container products: an in-process meter, a DryRun check, and
the ``marketplace-entrypoint meter`` command.

* `Meter`: sums usage per dimension and hour inside the seller's software and reports each hour
  once, idempotently, surviving crashes and restarts (see `entrypoint.meter.meter`).
* `meter_dry_run`: a MeterUsage DryRun (permissions, product code, entitlement, dimension),
  for start-up checks and a ``check`` command.
* `send_usage`: one hour of one dimension, with retries, for callers that keep their own books.
"""

from __future__ import annotations

from .meter import FailedUsage, FlushReport, Meter, SentUsage
from .send import DryRunResult, meter_dry_run, send_usage

__all__ = [
    "DryRunResult",
    "FailedUsage",
    "FlushReport",
    "Meter",
    "SentUsage",
    "meter_dry_run",
    "send_usage",
]
