"""Controlling and inspecting the emulated service: from Python (`ServiceControl`, mixed into
`Emulator`) and over HTTP (`admin_route`, for tests written in any language).

HTTP, on the emulator's own port, under a prefix no AWS SDK ever sends to (SDKs POST to ``/``):

* ``GET /_emulator/state``: `EmulatorState.export`: products, every metering record with its
  status, and counts;
* ``POST /_emulator/reset``: forget calls, metering records and redeemed tokens (products and
  customers stay), and truncate the journal.
"""

from __future__ import annotations

import secrets
from typing import Any

from .ledger import UsageEntry
from .state import Customer, EmulatorState, RegistrationToken

__all__ = ["ADMIN_PREFIX", "ServiceControl", "admin_route"]

ADMIN_PREFIX = "/_emulator/"
DEFAULT_TOKEN_TTL = 3600.0  # **[reading]** AWS does not document a registration token's lifetime


def _account_id() -> str:
    return f"{secrets.randbelow(10**12):012d}"


class ServiceControl:
    """Metering records, resets and SaaS customers, for an object with a ``state``."""

    state: EmulatorState

    def records(self, **where: object) -> list[UsageEntry]:
        """Every metering record the service decided on, oldest first, filtered by equal fields:
        ``records(billed=True)`` is what AWS would bill; ``records(status="DuplicateRequest")``
        what it refused."""
        return self.state.usage(**where)

    def export(self) -> dict[str, Any]:
        """The state as JSON-ready data (the same document ``GET /_emulator/state`` answers)."""
        return self.state.export()

    def reset(self) -> None:
        """Forget every call, metering record and redeemed token; products and customers stay."""
        self.state.reset()

    def add_customer(
        self,
        product_code: str,
        *,
        aws_account_id: str | None = None,
        identifier: str | None = None,
        license_arn: str | None = None,
        agreement_id: str | None = None,
        subscribed: bool = True,
    ) -> Customer:
        """A SaaS customer of the product. Unset ids are made up: a 12-digit account, a license
        ARN in AWS License Manager's form, an agreement id."""
        account = aws_account_id or _account_id()
        customer = Customer(
            product_code=product_code,
            aws_account_id=account,
            identifier=identifier,
            license_arn=license_arn
            or f"arn:aws:license-manager::{account}:license:l-{secrets.token_hex(16)}",
            agreement_id=agreement_id or f"agmt-{secrets.token_hex(12)}",
            subscribed=subscribed,
        )
        return self.state.add_customer(customer)

    def issue_registration_token(
        self, customer: Customer, *, ttl: float = DEFAULT_TOKEN_TTL, token: str | None = None
    ) -> RegistrationToken:
        """A token ResolveCustomer redeems once for ``customer``, within ``ttl`` seconds."""
        return self.state.issue_token(customer.product_code, customer.aws_account_id, ttl, token)


def admin_route(state: EmulatorState, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """Answer an admin request: (HTTP status, JSON body)."""
    name = path.removeprefix(ADMIN_PREFIX).split("?", 1)[0].strip("/")
    if (method, name) == ("GET", "state"):
        return 200, state.export()
    if (method, name) == ("POST", "reset"):
        state.reset()
        return 200, {"reset": True}
    return 404, {"message": f"no emulator control {method} {ADMIN_PREFIX}{name}"}
