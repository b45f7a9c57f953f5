"""``marketplace-entrypoint emulator``: run the Metering emulator until interrupted.

    marketplace-entrypoint emulator --port 8787 --keys-out ./emulator-keys \\
        --product prod-abc --product prod-nope:not-entitled --product prod-busy:throttle=3

Product options (after ``:``, comma-separated): ``entitled`` (default), ``not-entitled``,
``platform-not-supported``, ``invalid-region``, ``disabled-api``, ``throttle=N``,
``server-error=N``, ``rotation=<ISO 8601 time>``, ``versions=1+2``, ``latency=SECONDS``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any, NoReturn

from entrypoint.errors import UsageError

from .server import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator
from .state import Outcome

__all__ = ["main", "parse_product"]


def parse_product(spec: str) -> tuple[str, dict[str, Any]]:
    """``CODE[:OPTION,...]`` -> (code, ProductBehavior fields). Raises ValueError."""
    code, _, options = spec.partition(":")
    if not code:
        raise ValueError(f"{spec!r} has no product code")
    fields: dict[str, Any] = {}
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, _, value = option.partition("=")
        if not value:
            fields["outcome"] = Outcome(name)
        elif name == "throttle":
            fields["throttle"] = int(value)
        elif name == "server-error":
            fields["server_errors"] = int(value)
        elif name == "rotation":
            when = datetime.fromisoformat(value)
            fields["rotation"] = when if when.tzinfo else when.replace(tzinfo=UTC)
        elif name == "latency":
            fields["latency"] = float(value)
        elif name == "versions":
            fields["key_versions"] = tuple(int(v) for v in value.split("+"))
        else:
            raise ValueError(f"unknown product option {name!r}")
    return code, fields


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, remedy="see marketplace-entrypoint emulator --help")


def main(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog="marketplace-entrypoint emulator",
        description="Run a local AWS Marketplace Metering emulator.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8787, help="port (0: any free port)")
    parser.add_argument("--region", default="us-east-1", help="the simulated task's Region")
    parser.add_argument("--keys-out", help="write the keys directory the entrypoint should trust")
    parser.add_argument(
        "--product",
        action="append",
        default=[],
        metavar="CODE[:OPTIONS]",
        help="a product and its behaviour (repeatable; default: demo-product, entitled)",
    )
    args = parser.parse_args(list(argv))
    emulator = Emulator(region=args.region, host=args.host, port=args.port)
    for spec in args.product or ["demo-product"]:
        try:
            code, fields = parse_product(spec)
        except ValueError as exc:
            raise UsageError(f"--product {spec!r}: {exc}") from None
        emulator.configure(code, **fields)
    try:
        emulator.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            remedy="choose another --port (0 picks a free one)",
        ) from None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out = sys.stdout
    print(f"Metering emulator listening on {emulator.url} (Region {emulator.region})", file=out)
    if args.keys_out:
        path = emulator.write_keys(args.keys_out)
        print(f"keys directory written to {path}", file=out)
    for code, behavior in sorted(emulator.state.products.items()):
        print(f"  product {code}: {behavior.outcome.value}", file=out)
    print(
        "point a bootstrap at it with:\n"
        f"  export AWS_ENDPOINT_URL_MARKETPLACE_METERING={emulator.url}\n"
        f"  export AWS_REGION={emulator.region}\n"
        f"  export AWS_ACCESS_KEY_ID={EMULATOR_ACCESS_KEY_ID}\n"
        f"  export AWS_SECRET_ACCESS_KEY={EMULATOR_SECRET_ACCESS_KEY}\n"
        "or, as an ECS task would see it (task role credentials and task metadata):\n"
        f"  export AWS_CONTAINER_CREDENTIALS_FULL_URI={emulator.container_credentials_uri}\n"
        f"  export ECS_CONTAINER_METADATA_URI_V4={emulator.ecs_metadata_uri}",
        file=out,
        flush=True,
    )
    try:
        emulator.serve_forever()
    finally:
        emulator.stop()
    return 0
