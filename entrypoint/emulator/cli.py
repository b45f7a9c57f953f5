"""``marketplace-entrypoint emulator``: run the Metering emulator until interrupted.

    marketplace-entrypoint emulator --port 8787 --keys-out ./emulator-keys \\
        --product prod-abc:dimensions=users+hosts --product prod-nope:not-entitled \\
        --customer prod-abc:123456789012:identifier=cust-1 --state-file ./emulator.jsonl

Product options (after ``:``, comma-separated): ``entitled`` (default), ``not-entitled``,
``platform-not-supported``, ``invalid-region``, ``disabled-api``, ``throttle=N``,
``server-error=N``, ``rotation=<ISO 8601 time>``, ``versions=1+2``, ``latency=SECONDS``,
``dimensions=D1+D2`` (MeterUsage/BatchMeterUsage dimensions; default: any),
``unprocessed=N`` (the next N BatchMeterUsage records come back unprocessed).

Customer options (SaaS, after ``CODE:ACCOUNT_ID:``): ``identifier=ID`` (a legacy
CustomerIdentifier), ``license=ARN``, ``unsubscribed``, ``token=TOKEN`` and ``token-ttl=SECONDS``
(the registration token ResolveCustomer redeems; one is made up and printed if not given).

License options (AWS License Manager, contract products; after ``PRODUCT_ID:``): ``tier=NAME``
(a tier, ``Unit: None``), ``count=NAME/MAX`` (a counted entitlement, ``Unit: Count``, at most MAX
held at once), ``unit=NAME/UNIT/MAX`` (another unit), ``valid-for=SECONDS`` or
``expires=<ISO 8601 time>`` or ``expired``, ``region=REGION`` (its home Region; default the
emulator's), ``status=SUSPENDED``, ``throttle=N``, ``server-error=N``, ``not-found=N``,
``latency=SECONDS``, ``stale=SECONDS`` (answers dated that far in the past).

    marketplace-entrypoint emulator --license prod-abc:tier=Premium \
        --license prod-seats:count=Users/10,valid-for=86400

``--state-file`` journals every metering record and replays it on start: a restarted emulator
remembers what it recorded. ``GET /_emulator/state`` shows the state, ``POST /_emulator/reset``
clears it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from entrypoint.errors import UsageError
from entrypoint.flags import Parser

from .persistence import JournalError
from .server import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator
from .state import Customer, Outcome, RegistrationToken

__all__ = ["main", "parse_customer", "parse_license", "parse_product"]


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
        elif name == "dimensions":
            fields["dimensions"] = tuple(d for d in value.split("+") if d)
        elif name == "unprocessed":
            fields["unprocessed"] = int(value)
        else:
            raise ValueError(f"unknown product option {name!r}")
    return code, fields


def parse_customer(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``CODE:ACCOUNT_ID[:OPTION,...]`` -> (code, account, options). Raises ValueError."""
    code, _, rest = spec.partition(":")
    account, _, options = rest.partition(":")
    if not code or not account.isdigit() or len(account) != 12:
        raise ValueError(f"{spec!r} is not CODE:ACCOUNT_ID with a 12-digit account id")
    fields: dict[str, Any] = {}
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, _, value = option.partition("=")
        if name == "unsubscribed" and not value:
            fields["subscribed"] = False
        elif name == "identifier" and value:
            fields["identifier"] = value
        elif name == "license" and value:
            fields["license_arn"] = value
        elif name == "token" and value:
            fields["token"] = value
        elif name == "token-ttl" and value:
            fields["ttl"] = float(value)
        else:
            raise ValueError(f"unknown customer option {option!r}")
    return code, account, fields


_LICENSE_COUNTS = {
    "throttle": "throttle",
    "server-error": "server_errors",
    "not-found": "not_found",
}


def _entitlement(name: str, value: str) -> dict[str, Any]:
    """``count=NAME/MAX`` or ``unit=NAME/UNIT/MAX`` as LicensedEntitlement fields."""
    parts = value.split("/")
    if name == "count" and len(parts) == 2:
        return {"name": parts[0], "unit": "Count", "max_count": int(parts[1])}
    if name == "unit" and len(parts) >= 3:
        return {"name": parts[0], "unit": "/".join(parts[1:-1]), "max_count": int(parts[-1])}
    raise ValueError(
        f"{name}={value!r} is not {'NAME/MAX' if name == 'count' else 'NAME/UNIT/MAX'}"
    )


def _validity(name: str, value: str) -> dict[str, float]:
    if name == "valid-for" and value:
        return {"valid_for": float(value)}
    if name == "expires" and value:
        when = datetime.fromisoformat(value)
        return {"end": (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()}
    if name == "expired" and not value:
        return {"valid_for": -1.0}
    raise ValueError(
        f"license option {name} takes {'no value' if name == 'expired' else 'a value'}"
    )


def parse_license(spec: str) -> tuple[str, dict[str, Any]]:
    """``PRODUCT_ID:OPTION,...`` -> (product SKU, `Emulator.add_license` keywords)."""
    sku, _, options = spec.partition(":")
    if not sku:
        raise ValueError(f"{spec!r} has no product ID")
    fields: dict[str, Any] = {"entitlements": []}
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, _, value = option.partition("=")
        if name == "tier" and value:
            fields["entitlements"].append({"name": value})
        elif name in ("count", "unit"):
            fields["entitlements"].append(_entitlement(name, value))
        elif name in ("valid-for", "expires", "expired"):
            fields.update(_validity(name, value))
        elif name == "region" and value:
            fields["home_region"] = value
        elif name == "status" and value:
            fields["status"] = value.upper()
        elif name in _LICENSE_COUNTS and value:
            fields[_LICENSE_COUNTS[name]] = int(value)
        elif name in ("latency", "stale") and value:
            fields[name] = float(value)
        else:
            raise ValueError(f"unknown license option {option!r}")
    if not fields["entitlements"]:
        raise ValueError(f"{spec!r} grants nothing: give tier=NAME or count=NAME/MAX")
    return sku, fields


def _parser() -> Parser:
    parser = Parser(
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
    parser.add_argument(
        "--customer",
        action="append",
        default=[],
        metavar="CODE:ACCOUNT_ID[:OPTIONS]",
        help="a SaaS customer of a product, for BatchMeterUsage and ResolveCustomer (repeatable)",
    )
    parser.add_argument(
        "--license",
        action="append",
        default=[],
        metavar="PRODUCT_ID:OPTIONS",
        help="a License Manager license the buyer holds, for a contract product (repeatable)",
    )
    parser.add_argument(
        "--state-file",
        metavar="FILE",
        help="journal metering records to FILE and replay them on start",
    )
    return parser


def _build(args: argparse.Namespace) -> tuple[Emulator, list[tuple[Customer, RegistrationToken]]]:
    """The configured emulator (not yet listening) and its customers' registration tokens."""
    try:
        emulator = Emulator(
            region=args.region, host=args.host, port=args.port, state_file=args.state_file
        )
    except (JournalError, OSError) as exc:
        raise UsageError(
            f"--state-file {args.state_file}: {exc}",
            remedy="move the file aside (nothing is read from it then) or fix it",
        ) from None
    for spec in args.product or ["demo-product"]:
        try:
            code, fields = parse_product(spec)
        except ValueError as exc:
            raise UsageError(f"--product {spec!r}: {exc}") from None
        emulator.configure(code, **fields)
    customers = []
    for spec in args.customer:
        try:
            code, account, fields = parse_customer(spec)
        except ValueError as exc:
            raise UsageError(f"--customer {spec!r}: {exc}") from None
        token_fields = {k: fields.pop(k) for k in ("token", "ttl") if k in fields}
        customer = emulator.add_customer(code, aws_account_id=account, **fields)
        customers.append((customer, emulator.issue_registration_token(customer, **token_fields)))
    for spec in args.license:
        try:
            sku, fields = parse_license(spec)
            emulator.add_license(sku, **fields)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--license {spec!r}: {exc}") from None
    return emulator, customers


def _announce(
    emulator: Emulator,
    args: argparse.Namespace,
    customers: list[tuple[Customer, RegistrationToken]],
) -> None:
    out = sys.stdout
    print(f"Metering emulator listening on {emulator.url} (Region {emulator.region})", file=out)
    if args.keys_out:
        path = emulator.write_keys(args.keys_out)
        print(f"keys directory written to {path}", file=out)
    for code, behavior in sorted(emulator.state.products.items()):
        dimensions = "any" if behavior.dimensions is None else "+".join(behavior.dimensions)
        print(f"  product {code}: {behavior.outcome.value}, dimensions {dimensions}", file=out)
    for customer, token in customers:
        print(
            f"  customer of {customer.product_code}: account {customer.aws_account_id}, "
            f"license {customer.license_arn}, registration token {token.token}",
            file=out,
        )
    for lic in emulator.licenses():
        wanted = ", ".join(
            e.name if e.max_count is None else f"{e.name} (max {e.max_count} {e.unit})"
            for e in lic.entitlements
        )
        print(
            f"  license for {lic.product_sku}: {wanted}; {lic.status_at(emulator.state.clock())}, "
            f"home Region {lic.home_region}, {lic.arn}",
            file=out,
        )
    if args.state_file:
        count = len(emulator.records())
        print(f"journal {args.state_file}: {count} metering records replayed", file=out)
    print(
        f"state: GET {emulator.url}/_emulator/state; reset: POST {emulator.url}/_emulator/reset",
        file=out,
    )
    print(
        "point a bootstrap at it with:\n"
        f"  export AWS_ENDPOINT_URL_MARKETPLACE_METERING={emulator.url}\n"
        f"  export AWS_ENDPOINT_URL_LICENSE_MANAGER={emulator.url}  # with "
        "--allow-license-endpoint-override\n"
        f"  export AWS_REGION={emulator.region}\n"
        f"  export AWS_ACCESS_KEY_ID={EMULATOR_ACCESS_KEY_ID}\n"
        f"  export AWS_SECRET_ACCESS_KEY={EMULATOR_SECRET_ACCESS_KEY}\n"
        "or, as an ECS task would see it (task role credentials and task metadata):\n"
        f"  export AWS_CONTAINER_CREDENTIALS_FULL_URI={emulator.container_credentials_uri}\n"
        f"  export ECS_CONTAINER_METADATA_URI_V4={emulator.ecs_metadata_uri}",
        file=out,
        flush=True,
    )


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    emulator, customers = _build(args)
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
    _announce(emulator, args, customers)
    try:
        emulator.serve_forever()
    finally:
        emulator.stop()
    return 0
