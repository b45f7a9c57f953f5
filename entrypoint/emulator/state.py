"""What the emulated Metering service knows: products, their behaviour, and every call it served.

Tests change this state directly and then assert what the client did and what state it left
(the simulator pattern of tuf's ``RepositorySimulator``). All access goes through the lock.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = ["CallRecord", "EmulatorState", "Outcome", "ProductBehavior"]


class Outcome(enum.StrEnum):
    """How RegisterUsage answers for a product once throttles and faults are used up."""

    ENTITLED = "entitled"
    NOT_ENTITLED = "not-entitled"  # CustomerNotEntitledException
    PLATFORM_NOT_SUPPORTED = "platform-not-supported"  # PlatformNotSupportedException
    INVALID_REGION = "invalid-region"  # InvalidRegionException
    DISABLED_API = "disabled-api"  # DisabledApiException


@dataclass(frozen=True, slots=True)
class ProductBehavior:
    """One product's configured behaviour. Replace it (`EmulatorState.configure`) to change it.

    ``throttle`` and ``server_errors`` count down: the next N RegisterUsage calls for the product
    answer ThrottlingException, then the next M InternalServiceErrorException (HTTP 500), then
    ``outcome``. ``rotation`` adds PublicKeyRotationTimestamp to successful answers. ``latency``
    delays every answer by that many seconds (a slow service, or a call to interrupt).
    """

    outcome: Outcome = Outcome.ENTITLED
    throttle: int = 0
    server_errors: int = 0
    rotation: datetime | None = None
    key_versions: tuple[int, ...] = (1,)
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One request the emulator answered."""

    seq: int
    time: float
    operation: str
    status: int
    error: str | None
    region: str | None
    access_key_id: str | None
    request: Mapping[str, Any]
    response: Mapping[str, Any]

    @property
    def product_code(self) -> str | None:
        value = self.request.get("ProductCode")
        return value if isinstance(value, str) else None

    @property
    def nonce(self) -> str | None:
        value = self.request.get("Nonce")
        return value if isinstance(value, str) else None


@dataclass
class EmulatorState:
    """Mutable service state, guarded by ``lock``."""

    region: str = "us-east-1"
    products: dict[str, ProductBehavior] = field(default_factory=dict)
    records: list[CallRecord] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def configure(self, product_code: str, **changes: Any) -> ProductBehavior:  # noqa: ANN401 - ProductBehavior fields; dataclasses.replace checks names
        """Create or change a product's behaviour; unspecified fields keep their value."""
        with self.lock:
            current = self.products.get(product_code, ProductBehavior())
            if "outcome" in changes:
                changes["outcome"] = Outcome(str(changes["outcome"]))
            if "key_versions" in changes:
                versions = changes["key_versions"]
                if not isinstance(versions, tuple | list):
                    raise TypeError("key_versions must be a tuple of integers")
                changes["key_versions"] = tuple(sorted(int(v) for v in versions))
            updated = replace(current, **changes)
            self.products[product_code] = updated
            return updated

    def take(self, product_code: str) -> tuple[ProductBehavior, str | None]:
        """The product's behaviour and, if a countdown is running, the fault to answer with now."""
        with self.lock:
            behavior = self.products[product_code]
            if behavior.throttle > 0:
                self.products[product_code] = replace(behavior, throttle=behavior.throttle - 1)
                return behavior, "ThrottlingException"
            if behavior.server_errors > 0:
                self.products[product_code] = replace(
                    behavior, server_errors=behavior.server_errors - 1
                )
                return behavior, "InternalServiceErrorException"
            return behavior, None

    def record(
        self,
        *,
        operation: str,
        status: int,
        error: str | None,
        region: str | None,
        access_key_id: str | None,
        request: Mapping[str, Any],
        response: Mapping[str, Any],
    ) -> CallRecord:
        with self.lock:
            entry = CallRecord(
                seq=len(self.records) + 1,
                time=time.time(),
                operation=operation,
                status=status,
                error=error,
                region=region,
                access_key_id=access_key_id,
                request=MappingProxyType(dict(request)),
                response=MappingProxyType(dict(response)),
            )
            self.records.append(entry)
            return entry

    def calls(self, operation: str | None = None) -> list[CallRecord]:
        with self.lock:
            return [r for r in self.records if operation is None or r.operation == operation]
