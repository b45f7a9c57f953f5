"""Controlling the emulated License Manager from Python (`LicenseControl`, mixed into `Emulator`).

Tests grant the buyer licenses, renew, expire or suspend them, make them fail, then assert what
the client did with ``checkouts()`` (a seat still held is ``held=True``)::

    lic = emulator.add_license("prod-abc", entitlements=[{"name": "Users", "unit": "Count",
                                                         "max_count": 2}])
    emulator.renew_license(lic.arn, end=emulator.state.clock() + 86400)   # version 2
    emulator.configure_license(lic.arn, throttle=3)                       # faults, same version
    assert not emulator.checkouts(held=True)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .licensing import (
    Consumption,
    License,
    LicensedEntitlement,
    entitlements_from,
    new_license_arn,
)
from .state import EmulatorState

__all__ = ["LicenseControl"]


class LicenseControl:
    """Licenses and checkouts, for an object with a ``state``."""

    state: EmulatorState

    def add_license(
        self,
        product_sku: str,
        *,
        entitlements: Iterable[LicensedEntitlement | dict[str, Any]] = (),
        tier: str | None = None,
        valid_for: float | None = None,
        home_region: str | None = None,
        arn: str | None = None,
        **fields: Any,  # noqa: ANN401 - License fields (faults, status, issuer, ...)
    ) -> License:
        """Grant the buyer a license for ``product_sku`` from AWS Marketplace.

        ``tier`` adds a tier entitlement (``Unit: None``); ``entitlements`` are
        `LicensedEntitlement`s or their fields as a dict (``{"name": "Users", "unit": "Count",
        "max_count": 10}``). ``valid_for`` seconds from now sets the end (default: none).
        ``home_region`` defaults to the emulator's Region.
        """
        now = self.state.clock()
        granted = entitlements_from(entitlements)
        if tier is not None:
            granted = (LicensedEntitlement(name=tier), *granted)
        if not granted:
            raise ValueError("a license needs at least one entitlement (or a tier)")
        license_ = License(
            arn=arn or new_license_arn(),
            product_sku=product_sku,
            entitlements=granted,
            begin=fields.pop("begin", now),
            end=now + valid_for if valid_for is not None else fields.pop("end", None),
            home_region=home_region or self.state.region,
            created=now,
            **fields,
        )
        with self.state.lock:
            return self.state.licensing.add(license_)

    def renew_license(
        self,
        arn: str,
        *,
        entitlements: Iterable[LicensedEntitlement | dict[str, Any]] | None = None,
        tier: str | None = None,
        **changes: Any,  # noqa: ANN401 - License fields (end, status, ...)
    ) -> License:
        """A renewal or an upgrade: a new version of the license, with new entitlements (a new
        ``tier``, or ``entitlements``) and validity (``end``) if given."""
        if tier is not None:
            changes["entitlements"] = (LicensedEntitlement(name=tier),)
        elif entitlements is not None:
            changes["entitlements"] = entitlements_from(entitlements)
        with self.state.lock:
            return self.state.licensing.renew(arn, **changes)

    def configure_license(self, arn: str, **changes: Any) -> License:  # noqa: ANN401 - License fields
        """Change a license without a new version: faults (``throttle``, ``server_errors``,
        ``not_found``, ``latency``, ``stale``), ``status`` (``SUSPENDED``...), ``end``."""
        with self.state.lock:
            return self.state.licensing.change(arn, **changes)

    def license(self, arn: str) -> License:
        with self.state.lock:
            return self.state.licensing.licenses[arn]

    def licenses(self) -> list[License]:
        with self.state.lock:
            return list(self.state.licensing.licenses.values())

    def checkouts(self, *, held: bool | None = None) -> list[Consumption]:
        """Every checkout so far, oldest first; ``held=True``: those holding entitlements now
        (not checked in, not expired: a floating seat in use, or a drawdown)."""
        with self.state.lock:
            now = self.state.clock()
            return [
                consumption
                for consumption in self.state.licensing.consumptions.values()
                if held is None or consumption.holds(now) == held
            ]
