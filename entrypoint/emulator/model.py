"""The emulated services' API models, and request validation answered as AWS's front end does.

The source of truth is the model botocore ships (``botocore/data/meteringmarketplace/2016-01-14/
service-2.json``, and ``license-manager/2018-08-01`` for License Manager): every length, pattern,
range, enum and required member below comes from it at run time, never from a copy, so the
emulator checks exactly what the SDKs were generated from. Every function takes the ``service``
(default: Metering), and so do the protocol facts the server routes by (`target_prefix`,
`signing_name`).

AWS's JSON services (the Coral framework, as DynamoDB's documented answers and mhart/dynalite show)
answer in this order, all HTTP 400:

1. a body that is not JSON, or not an object: ``com.amazon.coral.service#SerializationException``;
2. a member of the wrong JSON type: ``SerializationException`` again;
3. broken constraints: ``com.amazon.coral.validate#ValidationException`` with one message listing
   every violation, ``"N validation error(s) detected: Value 'v' at 'path' failed to satisfy
   constraint: Member must ...; ..."``, where the path names members in lowerCamelCase and list
   items as ``usageRecords.1.member.dimension`` (1-based).

Members the model does not know are ignored, as the front end does. Lengths count UTF-16 code
units, as Java's ``String.length()`` does. Error codes each operation may answer, and their HTTP
statuses (``fault`` shapes are 500, the others 400), also come from the model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .protocol import ApiError

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel, Shape

__all__ = [
    "LICENSE_MANAGER",
    "SERVICE_NAME",
    "modelled_error",
    "operation_names",
    "service_model",
    "signing_name",
    "target_prefix",
    "validate_request",
]

SERVICE_NAME = "meteringmarketplace"
LICENSE_MANAGER = "license-manager"
# How much of an offending value a validation message repeats: ours, so that a hostile request
# cannot make the emulator echo a megabyte back (AWS's own cap is not documented).
_MAX_SHOWN = 256


@functools.cache
def _service_data(service: str = SERVICE_NAME) -> Mapping[str, Any]:
    import botocore.loaders

    data: Mapping[str, Any] = botocore.loaders.create_loader().load_service_model(
        service, "service-2"
    )
    return data


@functools.cache
def service_model(service: str = SERVICE_NAME) -> ServiceModel:
    """botocore's model of ``service``, loaded once (about 40 ms for Metering)."""
    import botocore.model

    return botocore.model.ServiceModel(dict(_service_data(service)), service)


def operation_names(service: str = SERVICE_NAME) -> tuple[str, ...]:
    return tuple(service_model(service).operation_names)


def target_prefix(service: str = SERVICE_NAME) -> str:
    """``X-Amz-Target``'s prefix, with its dot: the model's ``targetPrefix`` (JSON 1.1)."""
    return str(_service_data(service)["metadata"]["targetPrefix"]) + "."


def signing_name(service: str = SERVICE_NAME) -> str:
    """The SigV4 service name: the model's ``signingName``, else its ``endpointPrefix``."""
    metadata = _service_data(service)["metadata"]
    return str(metadata.get("signingName") or metadata["endpointPrefix"])


@functools.cache
def _error_statuses(operation: str, service: str = SERVICE_NAME) -> Mapping[str, int]:
    """Error code -> HTTP status: the shape's ``error.httpStatusCode`` if set, else 500 for a
    ``fault`` shape (the server's fault) and 400 for the others (the client's)."""
    shapes = _service_data(service)["shapes"]
    statuses: dict[str, int] = {}
    for error in _service_data(service)["operations"][operation].get("errors", ()):
        shape = shapes[error["shape"]]
        status = shape.get("error", {}).get("httpStatusCode")
        statuses[error["shape"]] = int(status) if status else (500 if shape.get("fault") else 400)
    return statuses


def modelled_error(
    operation: str,
    code: str,
    message: str,
    *,
    service: str = SERVICE_NAME,
    extra: Mapping[str, Any] | None = None,
) -> ApiError:
    """An error ``operation`` declares in the model, with the model's HTTP status, its message
    member as the shape spells it (``message`` or ``Message``) and its other members (``extra``,
    e.g. RedirectException's ``Location``), each checked against the shape.

    Refusing undeclared codes keeps the emulator from answering anything an SDK was not generated
    for (a typo would otherwise reach clients as an unknown error).
    """
    statuses = _error_statuses(operation, service)
    if code not in statuses:
        raise AssertionError(f"{operation} does not declare {code} in the API model")
    members = _service_data(service)["shapes"][code].get("members", {})
    unknown = set(extra or {}) - set(members)
    if unknown:
        raise AssertionError(f"{code} has no member {min(unknown)} in the API model")
    key = "Message" if "Message" in members else "message"
    return ApiError(code, message, status=statuses[code], message_key=key, extra=extra)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _java_length(value: str) -> int:
    """String length as Java counts it: UTF-16 code units."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def _shown(value: object) -> str:
    if isinstance(value, list):
        text = f"[{len(value)} items]"
    elif isinstance(value, dict):
        text = "{...}"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "structure": (dict,),
    "list": (list,),
    "map": (dict,),
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "timestamp": (int, float),  # JSON 1.1 sends epoch seconds
    "double": (int, float),
    "float": (int, float),
    "blob": (str,),
}
_JSON_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number"}


def _check_type(shape: Shape, value: object, path: str) -> None:
    expected = _JSON_TYPES.get(shape.type_name, (object,))
    ok = isinstance(value, expected)
    if ok and isinstance(value, bool) and bool not in expected:
        ok = False  # JSON true/false is not a number
    if not ok:
        got = _JSON_NAMES.get(type(value), "number" if isinstance(value, float) else "null")
        raise ApiError.serialization(
            f"Unexpected {got} for member '{path}': expected {shape.type_name}"
        )


class _Violations:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, value: object, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_shown(value)}'"
        self.messages.append(
            f"Value {shown} at '{path}' failed to satisfy constraint: Member must {constraint}"
        )


def _walk(shape: Shape, value: object, path: str, out: _Violations) -> None:
    """Type-check (raising) and collect constraint violations, depth first, in model order."""
    _check_type(shape, value, path)
    if isinstance(value, dict) and shape.type_name == "structure":
        _walk_structure(shape, value, path, out)
    elif isinstance(value, list):
        _check_length(len(value), shape.metadata, value, path, out)
        for index, item in enumerate(value, start=1):
            if item is not None:
                _walk(shape.member, item, f"{path}.{index}.member", out)  # type: ignore[attr-defined]
    elif isinstance(value, str):
        _check_string(shape, value, path, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        meta = shape.metadata
        if "min" in meta and value < meta["min"]:
            out.add(value, path, f"have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            out.add(value, path, f"have value less than or equal to {meta['max']}")


def _walk_structure(shape: Shape, value: Mapping[str, Any], path: str, out: _Violations) -> None:
    required = set(getattr(shape, "required_members", ()))
    for name, member in shape.members.items():  # type: ignore[attr-defined]
        if value.get(name) is not None:
            _walk(member, value[name], _join(path, name), out)
        elif name in required:
            out.add(None, _join(path, name), "not be null")


def _check_string(shape: Shape, value: str, path: str, out: _Violations) -> None:
    meta = shape.metadata
    _check_length(_java_length(value), meta, value, path, out)
    pattern = meta.get("pattern")
    if pattern is not None and _compiled(pattern).fullmatch(value) is None:
        out.add(value, path, f"satisfy regular expression pattern: {pattern}")
    enum: list[str] = getattr(shape, "enum", [])
    if enum and value not in enum:
        out.add(value, path, f"satisfy enum value set: [{', '.join(enum)}]")


def _check_length(
    length: int, meta: Mapping[str, Any], value: object, path: str, out: _Violations
) -> None:
    if "min" in meta and length < meta["min"]:
        out.add(value, path, f"have length greater than or equal to {meta['min']}")
    if "max" in meta and length > meta["max"]:
        out.add(value, path, f"have length less than or equal to {meta['max']}")


def _join(path: str, name: str) -> str:
    return f"{path}.{_lower_first(name)}" if path else _lower_first(name)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # The model's patterns are Java regular expressions matched against the whole value; these
    # use only syntax Python shares (classes, ranges, anchors, {m,n}).
    return re.compile(pattern)


def validate_request(operation: str, body: Mapping[str, Any], service: str = SERVICE_NAME) -> None:
    """Raise the `ApiError` AWS's front end would answer for ``body``, or return if it is valid."""
    model: OperationModel = service_model(service).operation_model(operation)
    shape = model.input_shape
    if shape is None:
        return
    violations = _Violations()
    _walk(shape, dict(body), "", violations)
    if violations.messages:
        count = len(violations.messages)
        raise ApiError.validation(
            f"{count} validation error{'s' if count != 1 else ''} detected: "
            + "; ".join(violations.messages)
        )
