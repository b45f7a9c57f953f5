"""A local AWS Marketplace Metering emulator: real HTTP, the JSON 1.1 protocol, all four operations
of the API model (RegisterUsage with PS256 tokens, MeterUsage, BatchMeterUsage, ResolveCustomer),
request validation from botocore's model, and an optional journal that survives restarts; and
AWS License Manager for contract-priced products (CheckoutLicense, CheckInLicense,
ExtendLicenseConsumption, GetLicense, ListReceivedLicenses) on Marketplace-issued licenses."""

from __future__ import annotations

from .ledger import UsageEntry
from .licensing import Consumption, License, LicensedEntitlement
from .platform import PlatformTask
from .protocol import ApiError
from .server import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator
from .sigv4 import Principal
from .state import CallRecord, Customer, Outcome, ProductBehavior, RegistrationToken

__all__ = [
    "EMULATOR_ACCESS_KEY_ID",
    "EMULATOR_SECRET_ACCESS_KEY",
    "ApiError",
    "CallRecord",
    "Consumption",
    "Customer",
    "Emulator",
    "License",
    "LicensedEntitlement",
    "Outcome",
    "PlatformTask",
    "Principal",
    "ProductBehavior",
    "RegistrationToken",
    "UsageEntry",
]
