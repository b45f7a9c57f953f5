"""`LicenseLease`: a contract product's license, held and re-checked by the software itself.

For software that must check its license while it runs, as AWS recommends ("we recommend that
you perform the CheckoutLicense API call every 15 minutes": renewals, upgrades and cancellations
make new license versions), or hold floating seats::

    with entrypoint.LicenseLease(on_change=react) as lease:   # checks out, or raises (77, 78...)
        while serving:
            if not lease.entitled: ...                          # or lease.raise_if_lapsed()
    # leaving the block checks the seat in

What each check does, by license model (`entrypoint.license.contract`):

* tiered and counted: CheckoutLicense, judged as at start, then CheckInLicense at once: nothing
  is held between checks, and a new tier or entitlement shows in the state;
* floating: the checkout is the seat, held while the lease is open. Each check extends it
  (ExtendLicenseConsumption: "another 60 minutes") and reads the license (GetLicense: status,
  version, validity), always before the seat's 60 minutes run out; a seat License Manager no
  longer knows is checked out again; `close` checks it in;
* drawdown: refused (every checkout draws the buyer's units down for good).

When a check fails: a license AWS no longer grants (not entitled, expired, suspended) lapses at
once; any other failure (throttling, the network, a refused call) keeps the last state until
the last answer's validity ends (``valid_until``), then lapses. Checks go on after a lapse, so a
renewal restores the lease. ``on_change(old, new)`` is called on every change of entitlement,
tier, entitlements or license version, from the thread that made the check. Time, sleep and the
client are injected: tests run many simulated hours in milliseconds (``background=False`` and
`tick`). The lease installs no signal handlers: the application owns its signals (turn SIGTERM
into ``SystemExit`` so that the ``with`` block, or `close`, checks the seat in).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from entrypoint.answers import Transient
from entrypoint.config import DEFAULT_DEADLINE, parse_settings, select_product
from entrypoint.errors import ConfigurationError, EntrypointError, NotEntitledError
from entrypoint.keys import DEFAULT_KEYS_DIR, load_trust_store
from entrypoint.logs import event
from entrypoint.retry import Backoff, retry_transient

from .answers import Allowed, LicenseGrant
from .checkout import check_in, checkout_with_retries, release
from .client import LicenseClient
from .contract import ContractProduct, LicenseModel

__all__ = ["DEFAULT_RECHECK_INTERVAL", "LeaseState", "LicenseLease"]

T = TypeVar("T")

DEFAULT_RECHECK_INTERVAL = 900.0  # AWS: "every 15 minutes"
# A floating seat is extended at least this long before its 60 minutes run out.
EXTEND_MARGIN = timedelta(minutes=10)
# After a failed check, the next one comes sooner; a check's retries last at most this long.
RETRY_SOON = 60.0
CHECK_DEADLINE = 60.0
MIN_GAP = 1.0


class _Stopped(Exception):  # noqa: N818 - an event, like StopIteration
    """The lease was closed while a check waited to retry."""


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What the software reads: entitled or not, with what, until when, and why not."""

    entitled: bool
    product_code: str
    product_id: str
    model: LicenseModel
    grant: LicenseGrant | None = None
    holding: bool = False
    license_version: str | None = None
    valid_until: datetime | None = None
    checked_at: datetime | None = None
    reason: str | None = None
    error: EntrypointError | None = field(default=None, compare=False, repr=False)

    @property
    def tier(self) -> str | None:
        return self.grant.tier if self.grant is not None else None

    @property
    def entitlements(self) -> tuple[Allowed, ...]:
        return self.grant.entitlements if self.grant is not None else ()

    def _facts(self) -> tuple[object, ...]:
        return (self.entitled, self.tier, self.entitlements, self.license_version)


class LicenseLease:
    """Check a contract product's license out and keep it current (module docstring).

    The product is the keys directory's contract product (``product_code`` or
    ``MARKETPLACE_PRODUCT_CODE`` chooses among several), or ``contract`` itself. ``region``,
    ``client``, ``endpoint_url`` and ``ca_bundle`` as for the bootstrap's client; the environment
    cannot redirect the calls unless ``allow_endpoint_override``. ``deadline`` bounds `open`'s
    retries; ``recheck_interval`` is the time between checks.
    """

    def __init__(
        self,
        *,
        product_code: str | None = None,
        keys_dir: Path | str = DEFAULT_KEYS_DIR,
        contract: ContractProduct | None = None,
        region: str | None = None,
        recheck_interval: float = DEFAULT_RECHECK_INTERVAL,
        deadline: float = DEFAULT_DEADLINE,
        on_change: Callable[[LeaseState, LeaseState], None] | None = None,
        background: bool = True,
        client: LicenseClient | None = None,
        endpoint_url: str | None = None,
        ca_bundle: str | None = None,
        allow_endpoint_override: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings = parse_settings(
            {
                "product_code": product_code,
                "deadline": str(deadline),
            },
            os.environ,
            keys_dir=keys_dir,
            allow_license_endpoint_override=allow_endpoint_override,
            given_as="argument",
        )
        if contract is None:
            product = select_product(settings, load_trust_store(settings.keys_dir))
            if product.contract is None:
                raise ConfigurationError(
                    f"product {product.code} is metered (RegisterUsage), not contract-priced",
                    remedy="use entrypoint.ensure_entitled() for metered products",
                )
            contract = product.contract
        if contract.model is LicenseModel.DRAWDOWN:
            raise ConfigurationError(
                f"product {contract.product_code} is a drawdown license: every checkout draws "
                "the buyer's units down for good, so it cannot be held or re-checked",
                remedy="check drawdown units out where the software consumes them",
            )
        if recheck_interval <= 0:
            raise ConfigurationError("recheck_interval must be positive", remedy="use 900")
        self.contract = contract
        self._settings = settings
        self._region = region
        self._client = client
        self._endpoint_url, self._ca_bundle = endpoint_url, ca_bundle
        self.recheck_interval = recheck_interval
        self.on_change = on_change
        self._background = background
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        # A check's retries wait on the stop event, so that close() never waits for a backoff;
        # an injected sleep (tests) is used as it is.
        self._check_sleep = self._pause if sleep is time.sleep else sleep
        self._backoff = Backoff(base=settings.retry_base_delay, cap=settings.retry_max_delay)
        self._state = LeaseState(
            entitled=False,
            product_code=contract.product_code,
            product_id=contract.product_id,
            model=contract.model,
            reason="not opened",
        )
        self._next_check = 0.0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False

    # -- what the software reads ------------------------------------------------------------
    @property
    def state(self) -> LeaseState:
        return self._state

    @property
    def entitled(self) -> bool:
        return self._state.entitled

    def raise_if_lapsed(self) -> None:
        """Raise the error that ended the entitlement (its ``exit_code`` as for a start)."""
        state = self._state
        if not state.entitled:
            raise state.error or NotEntitledError(
                f"the license of {state.product_id} is not held ({state.reason})"
            )

    @property
    def next_check(self) -> float:
        """When the next check is due (the ``clock``'s seconds)."""
        return self._next_check

    # -- lifecycle --------------------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _license_client(self) -> LicenseClient:
        if self._client is None:
            from entrypoint.region import (
                ResolvedRegion,
                default_region_chain,
                resolve_region,
                validate_region,
            )

            from .client import BotocoreLicenseClient

            region = (
                ResolvedRegion(name=validate_region(self._region, "region"), source="argument")
                if self._region is not None
                else resolve_region(default_region_chain(os.environ))
            )
            self._client = BotocoreLicenseClient(
                region=region.name,
                connect_timeout=self._settings.connect_timeout,
                read_timeout=self._settings.read_timeout,
                allow_overrides=self._settings.allow_license_endpoint_override,
                endpoint_url=self._endpoint_url,
                ca_bundle=self._ca_bundle,
            )
        return self._client

    def open(self) -> LeaseState:
        """Check the license out (retrying within ``deadline``); raise as a start would."""
        with self._lock:
            if self._opened:
                return self._state
            client = self._license_client()
            checkout = checkout_with_retries(
                client,
                self.contract,
                deadline=self._settings.deadline,
                backoff=self._backoff,
                clock=self._monotonic,
                sleep=self._sleep,
                wall_clock=self._clock,
            )
            self._opened = True
            self._settle(checkout.grant)
        if self._background:
            self._thread = threading.Thread(target=self._run, name="license-lease", daemon=True)
            self._thread.start()
        return self._state

    def close(self) -> None:
        """Stop checking and check a held seat in. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=CHECK_DEADLINE)
        with self._lock:
            state = self._state
            if state.holding and state.grant is not None:
                try:
                    check_in(
                        self._license_client(),
                        state.grant,
                        backoff=self._backoff,
                        clock=self._monotonic,
                        sleep=self._sleep,
                    )
                except EntrypointError as exc:  # never mask what ends the with block
                    event(
                        logging.WARNING,
                        f"{exc.diagnosis()}; License Manager returns the seat within 60 minutes",
                        event="check_in_failed",
                    )
                else:
                    event(
                        logging.INFO,
                        f"license seat of {state.product_id} checked in",
                        event="license_lease_closed",
                        product_id=state.product_id,
                    )
            self._set(replace(state, entitled=False, holding=False, reason="closed", error=None))

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- checks -----------------------------------------------------------------------------
    def _pause(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._next_check - self._clock())):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                event(logging.ERROR, f"license check failed: {exc!r}", event="license_check_bug")
                self._next_check = self._clock() + RETRY_SOON

    def tick(self) -> LeaseState:
        """Run the check if it is due (the background thread calls this); return the state."""
        with self._lock:
            if not self._opened or self._stop.is_set() or self._clock() < self._next_check:
                return self._state
            try:
                if self._state.holding:
                    self._keep_seat()
                else:
                    self._recheck()
            except _Stopped:  # closed during a retry's wait: close() takes over
                return self._state
            except NotEntitledError as exc:
                self._lapse(exc)
            except (EntrypointError, Transient) as exc:
                self._unconfirmed(exc)
            return self._state

    def _attempts(self, operation: str, call: Callable[[float], T]) -> T:
        return retry_transient(
            call,
            operation=operation,
            event_name="license_lease_retry",
            deadline=CHECK_DEADLINE,
            backoff=self._backoff,
            remedy="the lease keeps its state until the last answer's validity ends",
            clock=self._monotonic,
            sleep=self._check_sleep,
        ).value

    def _recheck(self) -> None:
        """A new checkout (its own retries), judged; checked in at once unless it is a seat."""
        checkout = checkout_with_retries(
            self._license_client(),
            self.contract,
            deadline=CHECK_DEADLINE,
            backoff=self._backoff,
            clock=self._monotonic,
            sleep=self._check_sleep,
            wall_clock=self._clock,
        )
        self._settle(checkout.grant)

    def _settle(self, grant: LicenseGrant) -> None:
        """Entitled with ``grant``: held as a seat (floating), else checked in at once."""
        holding = self.contract.model is LicenseModel.FLOATING
        version = self._version(grant) if holding else None
        if not holding:
            check_in(
                self._license_client(),
                grant,
                seconds=CHECK_DEADLINE,
                backoff=self._backoff,
                clock=self._monotonic,
                sleep=self._sleep,
            )
        self._set(
            LeaseState(
                entitled=True,
                product_code=self.contract.product_code,
                product_id=self.contract.product_id,
                model=self.contract.model,
                grant=grant,
                holding=holding,
                license_version=version,
                valid_until=grant.expires_at,
                checked_at=grant.checked_at,
            )
        )
        self._schedule(grant.expires_at if holding else None)

    def _version(self, grant: LicenseGrant) -> str | None:
        """The version of the license a seat was taken from (GetLicense), if it can be read."""
        if not grant.license_arn:
            return None
        try:
            return self._license_client().get_license(grant.license_arn, timeout=10.0).version
        except (EntrypointError, Transient):
            return None  # read again at the next check

    def _keep_seat(self) -> None:
        """Extend the held seat, then read the license's status and version."""
        state, client = self._state, self._license_client()
        grant = state.grant
        if grant is None or not grant.consumption_token:
            self._recheck()
            return
        token, arn = grant.consumption_token, grant.license_arn
        try:
            expires = self._attempts(
                "ExtendLicenseConsumption", lambda left: client.extend(token, timeout=left)
            )
        except NotEntitledError:  # the seat is gone (expired): take one again
            self._set(replace(state, holding=False))
            self._recheck()
            return
        status = (
            self._attempts("GetLicense", lambda left: client.get_license(arn, timeout=left))
            if arn
            else None
        )
        now = self._now()
        extended = replace(grant, expires_at=expires, checked_at=now)
        version = status.version if status is not None else state.license_version
        if status is not None and not status.usable(now):
            ended = f" (ended {status.valid_until.isoformat()})" if status.valid_until else ""
            raise NotEntitledError(
                f"the license of {state.product_id} is {status.status}{ended}",
                remedy="the buyer can renew the contract in AWS Marketplace",
            )
        self._set(
            replace(
                state,
                entitled=True,
                grant=extended,
                license_version=version,
                valid_until=expires,
                checked_at=now,
                reason=None,
                error=None,
            )
        )
        self._schedule(expires)

    def _schedule(self, seat_expires: datetime | None, *, soon: bool = False) -> None:
        """The next check: after the interval (sooner after a failure), before a held seat's
        time runs out, and never at once (a check failing at once must not spin)."""
        now = self._clock()
        interval = self.recheck_interval
        due = now + (min(RETRY_SOON, interval) if soon else interval)
        if seat_expires is not None:
            due = min(due, (seat_expires - EXTEND_MARGIN).timestamp())
        self._next_check = max(due, now + min(MIN_GAP, interval))

    def _lapse(self, error: EntrypointError) -> None:
        state = self._state
        if state.holding and state.grant is not None:
            release(self._license_client(), state.grant.consumption_token)
        event(
            logging.WARNING,
            f"the license of {state.product_id} lapsed: {error.reason}",
            event="license_lapsed",
            product_id=state.product_id,
            exit_code=int(error.exit_code),
        )
        self._set(replace(state, entitled=False, holding=False, reason=error.reason, error=error))
        self._schedule(None, soon=True)

    def _unconfirmed(self, error: EntrypointError | Transient) -> None:
        """A check that could not conclude: keep the state until its validity ends."""
        state = self._state
        reason = error.reason if isinstance(error, EntrypointError) else str(error)
        if state.entitled and state.valid_until is not None and self._now() < state.valid_until:
            event(
                logging.WARNING,
                f"the license of {state.product_id} could not be re-checked ({reason}); still "
                f"valid until {state.valid_until.isoformat()}",
                event="license_unconfirmed",
            )
            self._set(replace(state, reason=reason))
            self._schedule(state.valid_until if state.holding else None, soon=True)
            return
        lapse = error if isinstance(error, EntrypointError) else NotEntitledError(reason)
        self._lapse(lapse)

    def _set(self, new: LeaseState) -> None:
        old, self._state = self._state, new
        if old._facts() != new._facts() and self.on_change is not None:
            try:
                self.on_change(old, new)
            except Exception as exc:  # noqa: BLE001 - the application's callback must not stop checks
                event(logging.ERROR, f"on_change raised {exc!r}", event="license_callback_failed")
