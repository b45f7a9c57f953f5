"""A contract product's start: CheckoutLicense with retries, the judgement, CheckInLicense.

The steps (`license_at_start`), each with the bootstrap's errors and exit codes:

1. the Region (the bootstrap's chain) and a License Manager client pinned to AWS
   (`entrypoint.license.client`);
2. `checkout_with_retries`: one fresh ClientToken (256 bits from the CSPRNG) per checkout, the
   *same* token for each retry of it, so that an answer lost on the way never holds a second
   seat or draws down twice (the ClientToken "ensure[s] the idempotency of the request");
   throttling and server faults retried with the bootstrap's backoff inside the deadline; a
   not-entitled answer retried once after `NOT_ENTITLED_RETRY_SECONDS` with a new token, since a
   seat held by another task answers the same; then the pure judgement
   (`entrypoint.license.answers.judge_checkout`);
3. `check_in`: a PROVISIONAL checkout is checked in before the workload starts, so a start never
   holds a floating seat for the 60 minutes AWS keeps an unreturned one ("the entitlement checks
   back into the pool automatically after 60 minutes"). A drawdown (PERPETUAL) checkout "can't be
   returned" and is not.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from entrypoint.config import Settings
from entrypoint.errors import EntrypointError, NotEntitledError, RetriesExhaustedError
from entrypoint.logs import event
from entrypoint.region import ResolvedRegion
from entrypoint.retry import MIN_ATTEMPT_SECONDS, Backoff, retry_transient

from .answers import LicenseGrant, NoLicenseError, judge_checkout
from .client import LicenseClient
from .contract import ContractProduct

__all__ = [
    "CHECK_IN_SECONDS",
    "NOT_ENTITLED_RETRY_SECONDS",
    "Checkout",
    "LicenseEntitlement",
    "check_in",
    "checkout_with_retries",
    "license_at_start",
    "new_client_token",
]

# A live integration retried NoEntitlementsAllowedException once after 1.5 s (seat contention).
NOT_ENTITLED_RETRY_SECONDS = 1.5
# How long a check-in may be retried: past it, the seat comes back by itself within 60 minutes.
CHECK_IN_SECONDS = 30.0
# 32 random bytes as 43 base64url characters: within ClientToken's 2048 (pattern \S+).
CLIENT_TOKEN_BYTES = 32
_REMEDY = (
    "check egress to the License Manager endpoint and the task's credentials, or raise "
    "MARKETPLACE_RETRY_DEADLINE"
)


def new_client_token() -> str:
    """A fresh ClientToken from the operating system's CSPRNG."""
    return secrets.token_urlsafe(CLIENT_TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class Checkout:
    """A judged checkout and what it took."""

    grant: LicenseGrant
    attempts: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class LicenseEntitlement:
    """A contract product's start: the buyer's license covers what the image requires."""

    grant: LicenseGrant
    region: str
    region_source: str
    attempts: int
    elapsed: float
    checked_in: bool

    @property
    def product_code(self) -> str:
        return self.grant.product_code

    def summary(self) -> dict[str, Any]:
        return {
            **self.grant.summary(),
            "region": self.region,
            "region_source": self.region_source,
            "attempts": self.attempts,
            "checked_in": self.checked_in,
        }


def _utc(wall_clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(wall_clock(), UTC)


def release(client: LicenseClient, token: str | None, *, timeout: float = 5.0) -> None:
    """One best-effort check-in (a checkout that will not be used); failures are logged."""
    if not token:
        return
    try:
        client.check_in(token, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - best effort: the seat returns within 60 minutes
        event(
            logging.WARNING,
            f"could not check in the unused checkout ({type(exc).__name__}: {exc}); License "
            "Manager returns it within 60 minutes",
            event="check_in_failed",
        )


def checkout_with_retries(
    client: LicenseClient,
    contract: ContractProduct,
    *,
    deadline: float,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
    uniform: Callable[[float, float], float] = random.uniform,
    token_factory: Callable[[], str] = new_client_token,
) -> Checkout:
    """Check the license out until it is judged, fails finally, or ``deadline`` passes.

    Returns only a grant that covers the contract and is current (`judge_checkout`); a checkout
    that does not is checked in before its error is raised.
    """
    start = clock()
    attempts = 0

    def one_checkout(seconds: float) -> LicenseGrant:
        nonlocal attempts
        token = token_factory()  # one checkout: its retries resend the same token

        def attempt(remaining: float) -> Any:  # noqa: ANN401 - the client's CheckoutAnswer
            nonlocal attempts
            attempts += 1
            return client.checkout(contract, client_token=token, timeout=remaining)

        answer = retry_transient(
            attempt,
            operation="CheckoutLicense",
            event_name="checkout_license_retry",
            deadline=seconds,
            backoff=backoff,
            remedy=_REMEDY,
            clock=clock,
            sleep=sleep,
            uniform=uniform,
        ).value
        try:
            return judge_checkout(contract, answer, _utc(wall_clock))
        except EntrypointError:
            if contract.model.returnable:
                release(client, answer.consumption_token)
            raise

    try:
        grant = one_checkout(deadline)
    except NoLicenseError as first:
        left = deadline - (clock() - start) - NOT_ENTITLED_RETRY_SECONDS
        if left < MIN_ATTEMPT_SECONDS:
            raise
        event(
            logging.WARNING,
            f"CheckoutLicense answered {first.code}; retrying once in "
            f"{NOT_ENTITLED_RETRY_SECONDS:g}s (a seat another task holds answers the same)",
            event="checkout_license_not_entitled_retry",
            error=first.code,
        )
        sleep(NOT_ENTITLED_RETRY_SECONDS)
        grant = one_checkout(left)
    return Checkout(grant=grant, attempts=attempts, elapsed=clock() - start)


def check_in(
    client: LicenseClient,
    grant: LicenseGrant,
    *,
    seconds: float = CHECK_IN_SECONDS,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Check ``grant`` in, retrying throttling and faults for ``seconds``. True when returned.

    A checkout License Manager no longer knows (expired) holds nothing: True. When retries run
    out the seat is left to come back by itself (a warning, False); other refusals (the role
    lacks ``license-manager:CheckInLicense``) raise, since every start would then hold a seat.
    """
    token = grant.consumption_token
    if not grant.model.returnable or not token:
        return False
    try:
        retry_transient(
            lambda remaining: client.check_in(token, timeout=remaining),
            operation="CheckInLicense",
            event_name="check_in_license_retry",
            deadline=seconds,
            backoff=backoff,
            remedy="License Manager returns the seat within 60 minutes",
            clock=clock,
            sleep=sleep,
        )
    except RetriesExhaustedError as exc:
        event(
            logging.WARNING,
            f"{exc.reason}; License Manager returns the seat within 60 minutes",
            event="check_in_failed",
        )
        return False
    except NotEntitledError:  # ResourceNotFoundException: the checkout is gone already
        return True
    return True


def license_at_start(
    settings: Settings,
    contract: ContractProduct,
    *,
    environ: Mapping[str, str],
    region: ResolvedRegion | None = None,
    client: LicenseClient | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> LicenseEntitlement:
    """A contract product's bootstrap up to (not including) exec: check out, judge, check in."""
    from entrypoint.region import default_region_chain, resolve_region

    from .client import create_license_client

    region = region if region is not None else resolve_region(default_region_chain(environ))
    if client is None:
        client = create_license_client(
            region=region.name,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            allow_overrides=settings.allow_license_endpoint_override,
        )
    event(
        logging.INFO,
        f"checking out the license of product {contract.product_code} ({contract.describe()}) "
        f"in {region.name} (from {region.source}); deadline {settings.deadline:g}s",
        event="checkout_license_start",
        product_code=contract.product_code,
        product_id=contract.product_id,
        region=region.name,
        region_source=region.source,
        deadline_seconds=settings.deadline,
    )
    backoff = Backoff(base=settings.retry_base_delay, cap=settings.retry_max_delay)
    checkout = checkout_with_retries(
        client,
        contract,
        deadline=settings.deadline,
        backoff=backoff,
        clock=clock,
        sleep=sleep,
        wall_clock=wall_clock,
    )
    returned = check_in(client, checkout.grant, backoff=backoff, clock=clock, sleep=sleep)
    entitlement = LicenseEntitlement(
        grant=checkout.grant,
        region=region.name,
        region_source=region.source,
        attempts=checkout.attempts,
        elapsed=checkout.elapsed,
        checked_in=returned,
    )
    grant = checkout.grant
    covered = (
        f"tier {grant.tier}" if grant.tier else ", ".join(a.describe() for a in grant.entitlements)
    )
    kept = (
        "checked in"
        if returned
        else "drawn down for good"
        if not contract.model.returnable
        else "not checked in"
    )
    event(
        logging.INFO,
        f"license verified for product {contract.product_code}: {covered} ({kept}) after "
        f"{checkout.attempts} attempt{'s' if checkout.attempts != 1 else ''} in "
        f"{checkout.elapsed:.2f}s",
        event="license_verified",
        **entitlement.summary(),
    )
    return entitlement
