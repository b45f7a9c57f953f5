"""``marketplace-entrypoint check``: a preflight that runs every step of a start but the exec.

Sellers run it in their CI and in a debug shell in the task. It validates the keys directory and
the settings, resolves and prints the Region (and where it came from), the Metering endpoint and
the credential source, and with ``--call`` makes one RegisterUsage call (no retries) and verifies
the answer; ``--meter-dimension D`` adds a MeterUsage DryRun for pricing dimension D (permissions
and dimension checked, nothing recorded). It fails exactly as a start would, with the same exit
codes and diagnosis, after printing what it had found so far.

For a contract-priced product (a ``contract.json``) it prints the contract, the License Manager
endpoint (pinned to AWS unless ``--allow-license-endpoint-override``) and what TLS trusts, and
with ``--call`` makes one CheckoutLicense (no retries), judges it as a start does, and checks it
in at once; for a drawdown license, whose checkouts cannot be returned, ``--call`` lists the
buyer's licenses (ListReceivedLicenses) instead of drawing units down.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from .config import LogFormat, Settings
from .errors import NotEntitledError, RetriesExhaustedError, UsageError
from .logs import event

if TYPE_CHECKING:
    from .license.contract import ContractProduct

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
    from .config import select_product, select_target
    from .keys import load_trust_store
    from .metering import create_metering_client
    from .region import default_region_chain, resolve_region
    from .register import new_nonce
    from .verify import verify_signature

    trust = load_trust_store(settings.keys_dir)
    report.add("keys", f"{settings.keys_dir}: {trust.describe()}")
    contract = select_product(settings, trust).contract
    if contract is not None:
        if dimensions:
            raise UsageError(
                "--meter-dimension checks MeterUsage, which contract product "
                f"{contract.product_code} does not use",
                remedy="leave --meter-dimension out",
            )
        return _contract_steps(settings, report, contract, call=call)
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


def _contract_steps(
    settings: Settings, report: _Report, contract: ContractProduct, *, call: bool
) -> str:
    """A contract product's preflight: the contract, Region, endpoint, TLS trust, credentials,
    and with ``call`` one checkout checked in at once (a listing, for drawdown)."""
    from datetime import UTC, datetime

    from .answers import Transient
    from .license.answers import judge_checkout
    from .license.checkout import new_client_token, release
    from .license.client import create_license_client
    from .region import default_region_chain, resolve_region

    sources = settings.sources
    report.add(
        "product",
        f"{contract.product_code}: {contract.describe()} "
        f"(product from {sources.get('product_code', 'default')})",
    )
    report.add("deadline", f"{settings.deadline:g}s (from {sources.get('deadline', 'default')})")
    region = resolve_region(default_region_chain(os.environ))
    report.add("region", f"{region.name} (from {region.source})")
    allowed = settings.allow_license_endpoint_override
    client = create_license_client(
        region=region.name,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        allow_overrides=allowed,
    )
    endpoint = client.prepare()
    report.add(
        "endpoint",
        f"{endpoint} ("
        + (
            "environment overrides allowed by --allow-license-endpoint-override"
            if allowed
            else "pinned: environment overrides refused"
        )
        + ")",
    )
    trusted = client.verify if isinstance(client.verify, str) else "botocore's configured bundle"
    report.add("tls", f"verified with {trusted}")
    source = client.credential_source
    if source is not None:
        report.add("credentials", source.description)
    if not call:
        report.add("license", "not checked out (add --call to make one checkout, checked in)")
        return "ready"
    try:
        if not contract.model.returnable:
            found = client.list_received(contract)
            if not found:
                raise NotEntitledError(
                    f"the buyer has no license for {contract.product_id} from AWS Marketplace",
                    remedy="the buyer must buy a contract for the product in AWS Marketplace",
                )
            report.add(
                "license",
                "; ".join(f"{lic.license_arn} {lic.status} v{lic.version}" for lic in found)
                + " (drawdown: listed, nothing drawn down)",
            )
            return "ready: licensed"
        answer = client.checkout(contract, client_token=new_client_token())
    except Transient as failure:
        raise RetriesExhaustedError(
            f"the one License Manager call check makes failed: {failure}",
            remedy="a start would retry this until its deadline; run check again",
        ) from None
    try:
        grant = judge_checkout(contract, answer, datetime.now(UTC))
    finally:
        release(client, answer.consumption_token)
    covered = grant.tier or ", ".join(a.describe() for a in grant.entitlements)
    report.add("license", f"entitled: {covered}, {grant.license_arn} (checked in)")
    event(logging.INFO, "check passed", event="check_passed", **grant.summary())
    return "ready: entitled"
