"""The operations the emulator answers: all four of the Metering API model, and the License
Manager operations a contract-priced product calls (`license_manager`).

Each takes the state, the token signer, the request context and the parsed body, and returns a
`Reply` or raises `ApiError`, as the real service would. `OPERATIONS` wraps each so that the
request is first checked against the API model (`entrypoint.emulator.model.validate_request`):
an operation only ever sees a body whose types, lengths, patterns, ranges and required members
are valid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from entrypoint.emulator.model import (
    LICENSE_MANAGER,
    SERVICE_NAME,
    operation_names,
    validate_request,
)
from entrypoint.emulator.protocol import Reply, RequestContext
from entrypoint.emulator.state import EmulatorState
from entrypoint.emulator.tokens import TokenSigner

from .batch import batch_meter_usage
from .license_manager import LICENSE_HANDLERS
from .meter import meter_usage
from .register import register_usage
from .resolve import resolve_customer

__all__ = ["LICENSE_OPERATIONS", "OPERATIONS", "Operation"]

Operation = Callable[[EmulatorState, TokenSigner, RequestContext, dict[str, Any]], Reply]


def _validated(name: str, handler: Operation, service: str = SERVICE_NAME) -> Operation:
    def operation(
        state: EmulatorState, signer: TokenSigner, ctx: RequestContext, body: dict[str, Any]
    ) -> Reply:
        validate_request(name, body, service)
        return handler(state, signer, ctx, body)

    operation.__name__ = handler.__name__
    operation.__doc__ = handler.__doc__
    return operation


_HANDLERS: dict[str, Operation] = {
    "BatchMeterUsage": batch_meter_usage,
    "MeterUsage": meter_usage,
    "RegisterUsage": register_usage,
    "ResolveCustomer": resolve_customer,
}
# Every operation of the model has a handler, and nothing else does.
assert sorted(_HANDLERS) == sorted(operation_names()), "operations out of step with the model"  # noqa: S101

OPERATIONS: dict[str, Operation] = {name: _validated(name, h) for name, h in _HANDLERS.items()}
LICENSE_OPERATIONS: dict[str, Operation] = {
    name: _validated(name, h, LICENSE_MANAGER) for name, h in LICENSE_HANDLERS.items()
}
