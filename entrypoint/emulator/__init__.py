"""A local AWS Marketplace Metering emulator: real HTTP, the JSON 1.1 protocol, PS256 tokens."""

from __future__ import annotations

from .platform import PlatformTask
from .protocol import ApiError
from .server import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator
from .sigv4 import Principal
from .state import CallRecord, Outcome, ProductBehavior

__all__ = [
    "EMULATOR_ACCESS_KEY_ID",
    "EMULATOR_SECRET_ACCESS_KEY",
    "ApiError",
    "CallRecord",
    "Emulator",
    "Outcome",
    "PlatformTask",
    "Principal",
    "ProductBehavior",
]
