"""A local AWS Marketplace Metering emulator: real HTTP, the JSON 1.1 protocol, PS256 tokens."""

from __future__ import annotations

from .protocol import ApiError
from .server import Emulator
from .state import CallRecord, Outcome, ProductBehavior

__all__ = ["ApiError", "CallRecord", "Emulator", "Outcome", "ProductBehavior"]
