"""``marketplace-entrypoint meter``: the task's usage store from any language, and direct sends.

    marketplace-entrypoint meter add --dimension users --quantity 3      # into the task's store
    marketplace-entrypoint meter serve --dimension users --dimension gb  # the sender (a sidecar)
    marketplace-entrypoint meter status                                  # what is pending, lost
    marketplace-entrypoint meter --dimension users --quantity 12         # one hour, sent directly
    marketplace-entrypoint meter --dimension gb --quantity 0.25 --timestamp 2026-11-21T10:00Z
    marketplace-entrypoint meter --dimension users --dry-run

``add``, ``serve`` and ``status`` work on the task's usage store (`entrypoint.meter.commands`):
software in any language adds usage as it happens and one sender reports each hour. Without a
subcommand, ``meter`` sends one MeterUsage for the hour of ``--timestamp`` (default: now): the
timestamp is rounded down to the hour, and the ClientToken is derived from the instance
(``--instance-id``, default the host name: the task's or pod's), product, dimension and hour.
Running the same command again within the hour is therefore idempotent (same MeteringRecordId);
another quantity for the same hour is refused by AWS (exit 76). On success the MeteringRecordId
is the only line on stdout.

Product code, Region, credentials, timeouts and retries come from the same flags and
environment variables as the bootstrap (``MARKETPLACE_PRODUCT_CODE``, ``AWS_REGION``, ...).
No keys directory is needed: MeterUsage answers are not signed. Do not mix direct sends with a
store for the same dimension: AWS takes one record per dimension and hour, so the second sender
of an hour is refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

from entrypoint.errors import BootstrapInterrupted, UsageError, one_line
from entrypoint.signals import Interrupted

__all__ = ["fast_path", "main"]

PROGRAM = "marketplace-entrypoint meter"
_INSTANCE = re.compile(r"[A-Za-z0-9_.:/=+@-]{1,200}")


class MeterInterrupted(BootstrapInterrupted):
    """SIGINT or SIGTERM while reporting usage (exit 128+N)."""

    def __init__(self, signum: int, *, adding: bool = False) -> None:
        super().__init__(signum)
        self.reason = self.reason.replace("before the workload started", "while reporting usage")
        self.remedy = (
            "the usage may have been counted: see `meter status` before adding it again"
            if adding
            else "run the same command again: within the hour it is idempotent"
        )


def _parser() -> argparse.ArgumentParser:
    from entrypoint.flags import Parser, add_setting_flags

    parser = Parser(
        prog=PROGRAM,
        description="Report custom-dimension usage to AWS Marketplace (MeterUsage).",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--dimension", required=True, help="the pricing dimension's API name")
    parser.add_argument("--quantity", help="usage in the hour: at most 10 digits and 6 decimals")
    parser.add_argument(
        "--timestamp",
        help="when the usage happened: ISO 8601 (UTC unless it says otherwise) or epoch "
        "seconds; at most 6 hours ago (default: now)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only check permission, product, entitlement and dimension (MeterUsage DryRun)",
    )
    parser.add_argument(
        "--instance-id",
        help="what makes this task's ClientTokens its own [MARKETPLACE_METER_INSTANCE_ID; "
        "default: the host name]",
    )
    add_setting_flags(
        parser,
        [
            ("--product-code", "CODE", "product to meter"),
            ("--deadline", "SECONDS", "retry MeterUsage for this long (default 1800)"),
        ],
    )
    return parser


def _instance_id(flag: str | None) -> str:
    import socket

    value = flag or os.environ.get("MARKETPLACE_METER_INSTANCE_ID", "") or socket.gethostname()
    if _INSTANCE.fullmatch(value) is None:
        source = "--instance-id" if flag else "MARKETPLACE_METER_INSTANCE_ID or the host name"
        raise UsageError(f"{source} {one_line(value, 60)!r} is not 1-200 plain characters")
    return value


_STORE_COMMANDS = ("add", "serve", "status")


def fast_path(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is ``meter add``, which sets up logging only if it fails (the logging
    setup imports the bootstrap's configuration, which costs more than the add itself)."""
    return list(argv[:1]) == ["add"]


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else ""
    try:
        if command in _STORE_COMMANDS:
            from . import commands

            return commands.run(command, argv[1:])
        return _meter(argv)
    except Interrupted as interrupt:
        raise MeterInterrupted(interrupt.signum, adding=command == "add") from None


def _meter(argv: Sequence[str]) -> int:
    import time

    from entrypoint.config import parse_settings
    from entrypoint.logs import event
    from entrypoint.metering import BotocoreMeteringClient
    from entrypoint.region import default_region_chain, resolve_region
    from entrypoint.retry import Backoff

    from .hours import (
        check_dimension,
        client_token,
        format_quantity,
        hour_start,
        hour_text,
        parse_timestamp,
    )
    from .hours import parse_quantity as quantity_of
    from .send import meter_dry_run, send_usage

    args = _parser().parse_args(list(argv))
    settings = parse_settings(
        {
            name: getattr(args, name)
            for name in (
                "product_code",
                "deadline",
                "log_format",
                "connect_timeout",
                "read_timeout",
                "retry_base_delay",
                "retry_max_delay",
            )
        },
        os.environ,
    )
    if settings.product_code is None:
        raise UsageError(
            "no product code to meter",
            remedy="pass --product-code or set MARKETPLACE_PRODUCT_CODE",
        )
    dimension = check_dimension(args.dimension)
    if args.dry_run == (args.quantity is not None):
        raise UsageError("give --quantity, or --dry-run without a quantity")
    region = resolve_region(default_region_chain(os.environ))
    client = BotocoreMeteringClient(
        region=region.name,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    backoff = Backoff(base=settings.retry_base_delay, cap=settings.retry_max_delay)
    if args.dry_run:
        meter_dry_run(
            product_code=settings.product_code,
            dimension=dimension,
            client=client,
            deadline=settings.deadline,
            backoff=backoff,
        )
        sys.stdout.write("DryRunOperation\n")
        sys.stdout.flush()
        return 0
    quantity = format_quantity(quantity_of(args.quantity))
    hour = hour_start(parse_timestamp(args.timestamp, time.time()))
    record_id = send_usage(
        client,
        product_code=settings.product_code,
        dimension=dimension,
        hour=hour,
        quantity=quantity,
        client_token=client_token(
            "cli", _instance_id(args.instance_id), settings.product_code, dimension, hour
        ),
        deadline=settings.deadline,
        backoff=backoff,
    )
    event(
        logging.INFO,
        f"MeterUsage recorded {quantity} {dimension} for {hour_text(hour)} of product "
        f"{settings.product_code} in {region.name} (record {record_id})",
        event="meter_usage_sent",
        product_code=settings.product_code,
        dimension=dimension,
        hour=hour_text(hour),
        quantity=quantity,
        record_id=record_id,
    )
    sys.stdout.write(record_id + "\n")  # the one line on stdout, for scripts
    sys.stdout.flush()
    return 0
