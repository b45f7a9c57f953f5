"""``meter add``, ``meter serve`` and ``meter status``: the task's usage store from any language.

    export MARKETPLACE_PRODUCT_CODE=prod-abc MARKETPLACE_METER_STORE=/var/run/meter/usage.db
    export MARKETPLACE_METER_DIMENSIONS=users,gb
    marketplace-entrypoint meter add --dimension users --quantity 3   # prints the hour credited
    marketplace-entrypoint meter serve                                # the task's sender
    marketplace-entrypoint meter status                               # one JSON document

``add`` commits the usage to the store and exits: no network, no AWS SDK, no logging set-up
unless it fails (a few tens of milliseconds, most of them the interpreter's start), so any
program can call it per batch of requests. Its dimension must be declared: in
``MARKETPLACE_METER_DIMENSIONS``, or by a `Meter` or ``meter serve`` of the task.

``serve`` opens (or creates) the store, declares its dimensions, runs a MeterUsage DryRun for
each declared dimension (so a wrong product, dimension, Region or IAM policy stops the sidecar at
start), then competes for the task's sender lease and sends each ended hour until SIGTERM or
SIGINT. Then it sends what is due, and the current hour too unless another process of the task
is still metering, within ``--shutdown-deadline`` (default 20 s, under ECS's and Kubernetes' 30 s
default grace), and exits 0; 75 if usage that was due could not be sent (it stays in the store).
A second signal stops it at once (128+N).

``status`` prints the store's identity, sender, members, pending and lost usage as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from entrypoint.errors import ConfigurationError, RetriesExhaustedError, UsageError, one_line

if TYPE_CHECKING:
    from .store import Durability

__all__ = ["ENV_DIMENSIONS", "ENV_DURABILITY", "ENV_STORE", "run"]

ENV_STORE = "MARKETPLACE_METER_STORE"
ENV_DIMENSIONS = "MARKETPLACE_METER_DIMENSIONS"
ENV_DURABILITY = "MARKETPLACE_METER_DURABILITY"
# The bootstrap's variable for the product code (entrypoint.config.ENV), read here without
# importing the bootstrap's configuration.
_ENV_PRODUCT = "MARKETPLACE_PRODUCT_CODE"
_DEFAULT_SHUTDOWN_DEADLINE = 20.0


def run(command: str, argv: Sequence[str]) -> int:
    """Run ``meter <command> <argv>``; returns the exit status."""
    handlers: dict[str, Callable[[Sequence[str]], int]] = {
        "add": _add,
        "serve": _serve,
        "status": _status,
    }
    return handlers[command](argv)


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    from entrypoint.flags import Parser

    parser = Parser(
        prog=f"marketplace-entrypoint meter {command}",
        description=description,
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--store", metavar="PATH", help=f"the task's usage store [{ENV_STORE}]")
    parser.add_argument("--product-code", metavar="CODE", help=f"product [{_ENV_PRODUCT}]")
    parser.add_argument(
        "--durability",
        metavar="process|machine",
        help="machine: fsync every commit, for a store on a persistent volume "
        f"(default process: survives the death of any process) [{ENV_DURABILITY}]",
    )
    return parser


def _setting(
    flag: str | None,
    flag_name: str,
    env_name: str,
    parse: Callable[[str], Any],
    environ: Mapping[str, str],
) -> Any:  # noqa: ANN401 - whatever ``parse`` returns
    """A flag (a bad one: exit 64), else its environment variable (a bad one: exit 78)."""
    error: type[UsageError | ConfigurationError]
    if flag is not None:
        text, error, source = flag, UsageError, flag_name
    elif environ.get(env_name, ""):
        text, error, source = environ[env_name], ConfigurationError, env_name
    else:
        return None
    try:
        return parse(text)
    except UsageError as exc:
        raise error(f"{source}: {exc.reason}", remedy=f"fix {flag_name} / {env_name}") from None


def _durability(text: str) -> Durability:
    value = text.strip().lower()
    if value == "process":
        return "process"
    if value == "machine":
        return "machine"
    raise UsageError(f"{one_line(text, 40)!r} is not one of: process, machine")


def _dimensions(text: str) -> tuple[str, ...]:
    from .hours import check_dimension

    return tuple(check_dimension(part.strip()) for part in text.split(",") if part.strip())


def _common(args: argparse.Namespace) -> tuple[str, str, Durability | None, tuple[str, ...]]:
    """Store path, product code, durability and the declared dimensions of the environment."""
    from .hours import check_product_code

    environ = os.environ
    path = _setting(args.store, "--store", ENV_STORE, str, environ)
    if not path:
        raise UsageError(
            "no meter store", remedy=f"pass --store or set {ENV_STORE} (a file on a shared volume)"
        )
    product = _setting(
        args.product_code, "--product-code", _ENV_PRODUCT, check_product_code, environ
    )
    if product is None:
        raise UsageError(
            "no product code to meter", remedy=f"pass --product-code or set {_ENV_PRODUCT}"
        )
    durability = _setting(args.durability, "--durability", ENV_DURABILITY, _durability, environ)
    declared = _setting(None, "", ENV_DIMENSIONS, _dimensions, environ) or ()
    return str(path), product, durability, declared


# -- add ------------------------------------------------------------------------------------------
def _add(argv: Sequence[str]) -> int:
    import time

    from .hours import (
        check_dimension,
        hour_start,
        hour_text,
        parse_quantity,
        parse_timestamp,
        to_micros,
        usage_time,
    )
    from .opening import open_store

    parser = _parser("add", "Add usage to the task's usage store (no network).")
    parser.add_argument("--dimension", required=True, help="the pricing dimension's API name")
    parser.add_argument("--quantity", required=True, help="at most 10 digits and 6 decimals")
    parser.add_argument(
        "--timestamp",
        help="when the usage happened: ISO 8601 or epoch seconds, at most 6 hours ago "
        "(default: now)",
    )
    parser.add_argument("--log-format", help="text|json, for errors [MARKETPLACE_LOG_FORMAT]")
    args = parser.parse_args(list(argv))
    path, product, durability, declared = _common(args)
    dimension = check_dimension(args.dimension)
    micros = to_micros(parse_quantity(args.quantity))
    now = time.time()
    when = usage_time(parse_timestamp(args.timestamp, now), now)
    store = open_store(
        path,
        product_code=product,
        dimensions=declared,
        durability=durability,
        verify=False,
        check_every=1,  # one add, then exit: look at the WAL's size every time
    )
    try:
        if dimension not in declared and dimension not in store.declared():
            raise UsageError(
                f"dimension {dimension!r} is not declared for this store",
                remedy=f"list the product's dimensions in {ENV_DIMENSIONS} (for example "
                "users,gb), or start the task's Meter or meter serve with them",
            )
        credited = store.add(dimension, micros, hour_start(when))
    finally:
        store.close()
    sys.stdout.write(hour_text(credited) + "\n")  # the hour credited: carried if it was reported
    sys.stdout.flush()
    return 0


# -- status ---------------------------------------------------------------------------------------
def _status(argv: Sequence[str]) -> int:
    import time

    from .hours import format_quantity, hour_text
    from .ledger import pending
    from .opening import open_store
    from .shards import listed

    args = _parser("status", "Show the task's usage store as JSON.").parse_args(list(argv))
    path, product, durability, _ = _common(args)
    store = open_store(path, product_code=product, durability=durability, create=False)
    try:
        now = time.time()

        def rows(buckets: Sequence[Any]) -> list[dict[str, Any]]:
            return [
                {
                    "dimension": b.dimension,
                    "hour": hour_text(b.hour),
                    "quantity": format_quantity(b.quantity),
                    "state": b.state,
                    **({"error": b.error} if b.error else {}),
                }
                for b in buckets
            ]

        document = {
            "store": str(store.path),
            "product_code": store.product_code,
            "instance_id": store.instance_id,
            "durability": store.durability,
            "dimensions": list(store.declared()),
            "sender": store.holder(now),
            "members": [m.id for m in store.members(now)],
            "shards": len(listed(store.path)),
            "pending": rows(pending(store)),
            "lost": rows(store.lost()),
        }
    finally:
        store.close()
    import json

    sys.stdout.write(json.dumps(document, indent=1) + "\n")
    return 0


# -- serve ----------------------------------------------------------------------------------------
def _serve(argv: Sequence[str]) -> int:
    from entrypoint.config import parse_settings

    parser = _parser("serve", "Run the task's MeterUsage sender (a sidecar) until SIGTERM.")
    parser.add_argument(
        "--dimension",
        action="append",
        default=[],
        help=f"a pricing dimension to declare (repeatable) [{ENV_DIMENSIONS}, comma-separated]",
    )
    parser.add_argument(
        "--shutdown-deadline",
        metavar="SECONDS",
        help=f"retry the last sends for this long after SIGTERM (default "
        f"{_DEFAULT_SHUTDOWN_DEADLINE:g})",
    )
    from entrypoint.flags import SETTING_NAMES, add_setting_flags

    add_setting_flags(
        parser,
        [("--deadline", "SECONDS", "retry each hour's MeterUsage for this long (default 300)")],
    )
    args = parser.parse_args(list(argv))
    settings = parse_settings(
        {name: getattr(args, name, None) for name in SETTING_NAMES if hasattr(args, name)},
        os.environ,
    )
    path, product, durability, declared = _common(args)
    from .hours import check_dimension

    dimensions = tuple(dict.fromkeys((*declared, *(check_dimension(d) for d in args.dimension))))
    shutdown = _seconds_flag(args.shutdown_deadline, "--shutdown-deadline")
    deadline = settings.deadline if settings.sources.get("deadline") != "default" else 300.0
    from .serve import serve

    report = serve(
        path,
        product_code=product,
        dimensions=dimensions,
        durability=durability,
        settings=settings,
        send_deadline=deadline,
        shutdown_deadline=shutdown,
    )
    if report is not None and not report.ok:
        raise RetriesExhaustedError(
            f"{len(report.failed)} hour(s) of due usage could not be sent before shutdown",
            remedy="they stay in the store: the next sender of the task sends them within 6 hours",
        )
    return 0


def _seconds_flag(text: str | None, flag: str) -> float:
    if text is None:
        return _DEFAULT_SHUTDOWN_DEADLINE
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.1 <= value <= 600:
        raise UsageError(f"{flag} {one_line(text, 40)!r} is not 0.1-600 seconds")
    return value
