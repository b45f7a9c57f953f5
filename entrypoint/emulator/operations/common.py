"""What the operations share: the product a request names, injected faults, the caller's Region,
quantities and usage allocations, and timestamps.

Every rule cites the API model (botocore ``meteringmarketplace/2016-01-14/service-2.json``): its
shapes for limits, its documentation for behaviour. **[reading]** marks a choice of ours where the
documentation leaves the answer open.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from entrypoint.emulator.ledger import Allocation, canonical_quantity
from entrypoint.emulator.model import modelled_error
from entrypoint.emulator.protocol import ApiError, RequestContext
from entrypoint.emulator.state import EmulatorState, ProductBehavior

__all__ = [
    "allocations",
    "check_dimension",
    "check_region",
    "product",
    "quantity",
]


def product(state: EmulatorState, operation: str, product_code: str) -> ProductBehavior:
    """The product's behaviour after its fault countdowns: InvalidProductCodeException for a
    product the service does not know, then ThrottlingException / InternalServiceErrorException
    while a countdown runs, after any configured latency."""
    if product_code not in state.products:
        raise modelled_error(
            operation, "InvalidProductCodeException", f"Invalid product code {product_code}"
        )
    behavior, fault = state.take(product_code)
    if behavior.latency > 0:
        time.sleep(behavior.latency)
    if fault == "ThrottlingException":
        raise modelled_error(operation, "ThrottlingException", "Rate exceeded")
    if fault == "InternalServiceErrorException":
        raise modelled_error(operation, "InternalServiceErrorException", "Internal service error")
    return behavior


def check_region(state: EmulatorState, ctx: RequestContext, operation: str, code: str) -> None:
    """The Region in the request's SigV4 credential scope must be the task's own."""
    if ctx.region is not None and ctx.region != state.region:
        raise modelled_error(
            operation,
            code,
            f"{operation} must be called in the task's Region ({state.region}), not {ctx.region}",
        )


def check_dimension(behavior: ProductBehavior, operation: str, dimension: str) -> None:
    """InvalidUsageDimensionException: "The usage dimension does not match one of the
    UsageDimensions associated with products"."""
    if behavior.dimensions is not None and dimension not in behavior.dimensions:
        raise modelled_error(
            operation,
            "InvalidUsageDimensionException",
            f"Dimension {dimension} is not one of the product's dimensions",
        )


def quantity(
    body: Mapping[str, Any], whole: str, decimal: str, path: str = ""
) -> tuple[Decimal, str]:
    """The record's quantity and its kind ("whole" or "decimal").

    ``UsageQuantity``: "Defaults to 0 if neither UsageQuantity nor UsageQuantityAsDecimal is
    specified"; "You can't specify both". **[reading]** both is a ValidationException, the
    front end's answer for a request that breaks the model's rules.
    """
    has_whole, has_decimal = body.get(whole) is not None, body.get(decimal) is not None
    if has_whole and has_decimal:
        raise ApiError.validation(
            f"1 validation error detected: '{path}{_lower(whole)}' and '{path}{_lower(decimal)}' "
            "cannot both be specified"
        )
    if has_decimal:
        # The pattern ^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$ was checked by the model.
        return Decimal(str(body[decimal])), "decimal"
    return Decimal(int(body.get(whole) or 0)), "whole"


def allocations(
    operation: str, items: Sequence[Mapping[str, Any]] | None, total: Decimal, kind: str
) -> tuple[Allocation, ...]:
    """Check UsageAllocations against the record's quantity; return them canonical.

    UsageAllocations: "The sum of all UsageAllocation quantities must equal the usage quantity
    ..., and each UsageAllocation must have a unique set of tags"; "Allocations must use the same
    type of quantity as the request"; UsageAllocation: "Each allocation must specify exactly one
    of AllocatedUsageQuantity or AllocatedUsageQuantityAsDecimal". All of these answer
    InvalidUsageAllocationsException ("Sum of allocated usage quantities is not equal to the usage
    quantity, or the allocations don't use the same type of quantity"). **[reading]** the same
    tag key twice in one allocation is InvalidTagException ("The tag is invalid").
    """
    if items is None:
        return ()
    result: list[Allocation] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    total_allocated = Decimal(0)
    for index, item in enumerate(items, start=1):
        has_whole = item.get("AllocatedUsageQuantity") is not None
        has_decimal = item.get("AllocatedUsageQuantityAsDecimal") is not None
        if has_whole == has_decimal:
            raise _allocation_error(
                operation,
                f"allocation {index} must give exactly one of AllocatedUsageQuantity "
                "and AllocatedUsageQuantityAsDecimal",
            )
        if (kind == "decimal") != has_decimal:
            raise _allocation_error(
                operation,
                f"allocation {index} does not use the same type of quantity as the usage quantity",
            )
        amount = (
            Decimal(str(item["AllocatedUsageQuantityAsDecimal"]))
            if has_decimal
            else Decimal(int(item["AllocatedUsageQuantity"]))
        )
        tags = [(str(t["Key"]), str(t["Value"])) for t in item.get("Tags") or ()]
        if len({key for key, _ in tags}) != len(tags):
            raise modelled_error(
                operation, "InvalidTagException", f"allocation {index} repeats a tag key"
            )
        tag_set = tuple(sorted(tags))
        if tag_set in seen:
            raise _allocation_error(
                operation, f"allocation {index} repeats the tag set of an earlier allocation"
            )
        seen.add(tag_set)
        total_allocated += amount
        result.append((tag_set, canonical_quantity(amount)))
    if total_allocated != total:
        raise _allocation_error(
            operation,
            f"allocated quantities add up to {canonical_quantity(total_allocated)}, not the "
            f"usage quantity {canonical_quantity(total)}",
        )
    return tuple(sorted(result))


def _allocation_error(operation: str, message: str) -> ApiError:
    return modelled_error(operation, "InvalidUsageAllocationsException", message)


def _lower(name: str) -> str:
    return name[:1].lower() + name[1:]
