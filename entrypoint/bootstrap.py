"""The bootstrap's steps, in order: keys, target, region, RegisterUsage, verify.

`register_and_verify` is shared by the command line and the in-process API `ensure_entitled`; the
exec step belongs to the command line only. Nothing here returns unless the answer verified.
`entitle` is the command line's start: a contract-priced product (a ``contract.json`` in the keys
directory) is checked out from License Manager instead (`entrypoint.license.checkout`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_DEADLINE, Settings, Target, select_product, select_target
from .keys import DEFAULT_KEYS_DIR, TrustStore, load_trust_store
from .logs import event
from .metering import MeteringClient, create_metering_client
from .region import ResolvedRegion, default_region_chain, resolve_region, validate_region
from .register import Backoff, register_with_retries
from .verify import VerifiedEntitlement, verify_signature

if TYPE_CHECKING:
    from .license.checkout import LicenseEntitlement

__all__ = ["Entitlement", "ensure_entitled", "entitle", "register_and_verify"]


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A verified RegisterUsage: the buyer is entitled to run this product here and now."""

    verified: VerifiedEntitlement
    region: str
    region_source: str
    public_key_rotation: datetime | None
    attempts: int
    elapsed: float

    @property
    def product_code(self) -> str:
        return self.verified.product_code

    @property
    def public_key_version(self) -> int:
        return self.verified.public_key_version

    def summary(self) -> dict[str, Any]:
        """Loggable facts about the entitlement (no nonce, no token)."""
        return {
            "product_code": self.product_code,
            "public_key_version": self.public_key_version,
            "issued_at": self.verified.issued_at_datetime.isoformat(),
            "region": self.region,
            "region_source": self.region_source,
            "attempts": self.attempts,
            "public_key_rotation": (
                self.public_key_rotation.isoformat() if self.public_key_rotation else None
            ),
        }


def _warn_rotation(rotation: datetime, target: Target) -> None:
    event(
        logging.WARNING,
        f"public key v{target.public_key_version} of product {target.product_code} is being "
        f"rotated (PublicKeyRotationTimestamp {rotation.isoformat()}); ship an image with key "
        f"v{target.public_key_version + 1} before then",
        event="public_key_rotation",
        product_code=target.product_code,
        public_key_version=target.public_key_version,
        rotation=rotation.isoformat(),
    )


def register_and_verify(
    settings: Settings,
    *,
    environ: Mapping[str, str],
    trust: TrustStore | None = None,
    region: ResolvedRegion | None = None,
    client: MeteringClient | None = None,
    client_factory: Callable[[ResolvedRegion], MeteringClient] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> Entitlement:
    """Run the bootstrap up to (not including) exec. Returns only a verified entitlement."""
    trust = trust if trust is not None else load_trust_store(settings.keys_dir)
    target = select_target(settings, trust)
    region = region if region is not None else resolve_region(default_region_chain(environ))
    if client is None:
        if client_factory is not None:
            client = client_factory(region)
        else:
            client = create_metering_client(
                region=region.name,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
            )
    event(
        logging.INFO,
        f"registering usage of product {target.product_code} (key v{target.public_key_version}) "
        f"in {region.name} (from {region.source}); deadline {settings.deadline:g}s",
        event="register_usage_start",
        product_code=target.product_code,
        public_key_version=target.public_key_version,
        region=region.name,
        region_source=region.source,
        deadline_seconds=settings.deadline,
    )
    registration = register_with_retries(
        client,
        product_code=target.product_code,
        public_key_version=target.public_key_version,
        deadline=settings.deadline,
        backoff=Backoff(base=settings.retry_base_delay, cap=settings.retry_max_delay),
        clock=clock,
        sleep=sleep,
    )
    rotation = registration.answer.public_key_rotation
    if rotation is not None:
        _warn_rotation(rotation, target)
    verified = verify_signature(
        registration.answer.signature,
        product_code=target.product_code,
        public_key_version=target.public_key_version,
        nonce=registration.nonce,
        public_key=target.public_key,
        now=wall_clock(),
    )
    entitlement = Entitlement(
        verified=verified,
        region=region.name,
        region_source=region.source,
        public_key_rotation=rotation.astimezone(UTC) if rotation else None,
        attempts=registration.attempts,
        elapsed=registration.elapsed,
    )
    event(
        logging.INFO,
        f"entitlement verified for product {target.product_code} (key "
        f"v{target.public_key_version}, issued {verified.issued_at_datetime.isoformat()}) after "
        f"{registration.attempts} attempt{'s' if registration.attempts != 1 else ''} in "
        f"{registration.elapsed:.2f}s",
        event="entitlement_verified",
        **entitlement.summary(),
    )
    return entitlement


def entitle(settings: Settings, *, environ: Mapping[str, str]) -> Entitlement | LicenseEntitlement:
    """A start up to (not including) exec, for the product the settings select: RegisterUsage
    and verify for a metered product, a License Manager checkout for a contract product."""
    trust = load_trust_store(settings.keys_dir)
    product = select_product(settings, trust)
    if product.contract is not None:
        from .license.checkout import license_at_start

        return license_at_start(settings, product.contract, environ=environ)
    return register_and_verify(settings, environ=environ, trust=trust)


def ensure_entitled(
    *,
    product_code: str | None = None,
    public_key_version: int | None = None,
    keys_dir: Path | str = DEFAULT_KEYS_DIR,
    deadline: float = DEFAULT_DEADLINE,
    region: str | None = None,
    client: MeteringClient | None = None,
) -> Entitlement:
    """Register usage and verify the answer, in-process; return the verified entitlement.

    For software that must make the call itself, as AWS advises when buyers can override the
    image's ENTRYPOINT. Same steps, limits and errors as the command line, minus the exec: raises
    an `entrypoint.EntrypointError` subclass (each carries ``exit_code`` and ``diagnosis()``) and
    returns only after the signature verified.

    Settings not given as arguments come from the process environment, as for the command line
    (``MARKETPLACE_PRODUCT_CODE``, ``AWS_REGION``, ...), and so do the AWS SDK's credentials and
    endpoint. ``region`` overrides the region chain; ``client`` replaces the botocore client.
    Installs no signal handlers: the host application owns its signals.
    """
    from .config import parse_settings

    env = os.environ

    settings = parse_settings(
        {
            "product_code": None if product_code is None else str(product_code),
            "public_key_version": None if public_key_version is None else str(public_key_version),
            "deadline": str(deadline),
        },
        env,
        keys_dir=keys_dir,
        given_as="argument",
    )
    resolved = None
    if region is not None:
        resolved = ResolvedRegion(name=validate_region(region, "region"), source="argument")
    return register_and_verify(settings, environ=env, region=resolved, client=client)
