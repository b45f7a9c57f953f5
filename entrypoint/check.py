"""``marketplace-entrypoint check``: a preflight that runs every step of a start but the exec.

Sellers run it in their CI and in a debug shell in the task. It validates the keys directory and
the settings, resolves and prints the Region (and where it came from), the Metering endpoint and
the credential source, and with ``--call`` makes one RegisterUsage call (no retries) and verifies
the answer; ``--meter-dimension D`` adds a MeterUsage DryRun for pricing dimension D (permissions
and dimension checked, nothing recorded). It fails exactly as a start would, with the same exit
codes and diagnosis, after printing what it had found so far.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from .config import LogFormat, Settings
from .errors import RetriesExhaustedError
from .logs import event

__all__ = ["run_check"]


class _Report:
    """Facts gathered so far, printed as aligned lines, or as one JSON object at the end."""

    def __init__(self, log_format: LogFormat, out: TextIO) -> None:
        self.json = log_format is LogFormat.JSON
        self.out = out
        self.facts: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self.facts[name] = value
        if not self.json:
            print(f"{name:12} {value}", file=self.out, flush=True)

    def finish(self, status: str) -> None:
        self.facts["result"] = status
        if self.json:
            print(json.dumps(self.facts), file=self.out, flush=True)
        else:
            print(f"{'result':12} {status}", file=self.out, flush=True)


def run_check(argv: Sequence[str]) -> int:
    from .flags import parse_settings_args, settings_parser

    args = settings_parser(check=True).parse_args(list(argv))
    settings = parse_settings_args(args)
    report = _Report(settings.log_format, sys.stdout)
    try:
        status = _steps(settings, report, call=args.call, dimensions=args.meter_dimension)
    except BaseException:
        if report.facts:
            report.finish("failed (see the error below)")
        raise
    report.finish(status)
    return 0


def _steps(
    settings: Settings, report: _Report, *, call: bool, dimensions: Sequence[str] = ()
) -> str:
    """Every step of a start but the exec; returns the result line."""
    from .answers import Transient
    from .bootstrap import Entitlement
    from .config import select_target
    from .keys import load_trust_store
    from .metering import create_metering_client
    from .region import default_region_chain, resolve_region
    from .register import new_nonce
    from .verify import verify_signature

    trust = load_trust_store(settings.keys_dir)
    report.add("keys", f"{settings.keys_dir}: {trust.describe()}")
    target = select_target(settings, trust)
    sources = settings.sources
    report.add(
        "product",
        f"{target.product_code}, public key v{target.public_key_version} "
        f"(product from {sources.get('product_code', 'default')}, "
        f"version from {sources.get('public_key_version', 'default')})",
    )
    report.add("deadline", f"{settings.deadline:g}s (from {sources.get('deadline', 'default')})")
    region = resolve_region(default_region_chain(os.environ))
    report.add("region", f"{region.name} (from {region.source})")
    client = create_metering_client(
        region=region.name,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    report.add("endpoint", client.prepare())
    source = client.credential_source
    if source is not None:
        support = "supported" if source.supported else "NOT supported by AWS for metering"
        report.add("credentials", f"{source.description} ({support})")
    for dimension in dimensions:
        from .meter import meter_dry_run

        # MeterUsageRequest.DryRun: permissions and dimension checked, nothing recorded.
        dry_run = meter_dry_run(
            product_code=target.product_code,
            dimension=dimension,
            region=region.name,
            deadline=min(settings.deadline, 60.0),
        )
        report.add("meter", f"{dimension}: DryRun accepted after {dry_run.attempts} attempt(s)")
    if not call:
        report.add("register", "not called (add --call to make one RegisterUsage call)")
        return "ready"
    nonce = new_nonce()
    try:
        answer = client.register_usage(
            product_code=target.product_code,
            public_key_version=target.public_key_version,
            nonce=nonce,
        )
    except Transient as failure:
        raise RetriesExhaustedError(
            f"the one RegisterUsage call check makes failed: {failure}",
            remedy="a start would retry this until its deadline; run check again",
        ) from None
    verified = verify_signature(
        answer.signature,
        product_code=target.product_code,
        public_key_version=target.public_key_version,
        nonce=nonce,
        public_key=target.public_key,
    )
    entitlement = Entitlement(
        verified=verified,
        region=region.name,
        region_source=region.source,
        public_key_rotation=answer.public_key_rotation,
        attempts=1,
        elapsed=0.0,
    )
    report.add(
        "register",
        f"verified: product {verified.product_code}, key v{verified.public_key_version}, "
        f"issued {verified.issued_at_datetime.isoformat()}",
    )
    if answer.public_key_rotation is not None:
        report.add("rotation", f"key rotation at {answer.public_key_rotation.isoformat()}")
    event(logging.INFO, "check passed", event="check_passed", **entitlement.summary())
    return "ready: entitled"
