"""A local AWS Marketplace Metering emulator: real HTTP, the JSON 1.1 protocol, all four operations
of the API model (RegisterUsage with PS256 tokens, MeterUsage, BatchMeterUsage, ResolveCustomer),
request validation from botocore's model, and an optional journal that survives restarts."""

from __future__ import annotations

from .ledger import UsageEntry
from .protocol import ApiError
from .server import Emulator
from .state import CallRecord, Customer, Outcome, ProductBehavior, RegistrationToken

__all__ = [
    "ApiError",
    "CallRecord",
    "Customer",
    "Emulator",
    "Outcome",
    "ProductBehavior",
    "RegistrationToken",
    "UsageEntry",
]
