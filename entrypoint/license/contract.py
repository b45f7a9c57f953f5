"""A contract-priced product's configuration: ``<keys-dir>/<PRODUCT_CODE>/contract.json``.

Contract-priced container products do not call RegisterUsage: AWS Marketplace issues the buyer a
license in AWS License Manager, and the software checks it out with ``CheckoutLicense`` (seller
guide, container-license-manager-integration). What the software checks is decided by the image,
never by the environment, so the product ID and the entitlements to require live in the keys
directory, beside the other products' public keys, and are checked as strictly as keys: a size
cap, strict JSON (UTF-8, one object, no duplicate names, no unknown members), and one named
error per mistake. Pure: `parse_contract` takes bytes and returns a frozen `ContractProduct`.

License models (seller guide, "License models"):

* ``tiered``: the buyer bought one tier (Basic, Premium, ...). The checkout names every tier the
  image accepts with ``Unit: None`` and no value; the answer holds the tier bought. Entitled when
  it holds at least one of them.
* ``counted``: the configurable model. Each entitlement is checked out with its unit and value
  (a counted dimension needs ``Unit: Count`` and ``Value: "1"``: a live 2026 integration found
  ``None`` refused) and checked in at once; entitled when the answer allows every one.
* ``floating``: counted entitlements that the software holds while it runs (seats): the
  in-process lease keeps the checkout and extends it; a start still checks in before exec.
* ``drawdown``: a ``PERPETUAL`` checkout, drawn from the buyer's pool for good ("can't be
  returned to the license pool"): every start consumes the values.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from entrypoint.errors import ConfigurationError, one_line

__all__ = [
    "CONTRACT_FILE",
    "ENTITLEMENT_UNITS",
    "MARKETPLACE_KEY_FINGERPRINT",
    "MAX_CONTRACT_BYTES",
    "ContractEntitlement",
    "ContractProduct",
    "LicenseModel",
    "parse_contract",
]

CONTRACT_FILE = "contract.json"
# "the key-fingerprint isn't a placeholder value but the actual value of the fingerprint with which
# all licenses will be published" (seller guide); "Using this key fingerprint ensures that the
# license is issued by AWS Marketplace". Pinned: never read from the image or the environment.
MARKETPLACE_KEY_FINGERPRINT = "aws:294406891311:AWS/Marketplace:issuer-fingerprint"
# A contract file is a few hundred bytes written by hand; the cap refuses anything else unread.
MAX_CONTRACT_BYTES = 16 * 1024
MAX_ENTITLEMENTS = 32
MAX_NAME_LENGTH = 255
MAX_DEPTH = 4
# EntitlementDataUnit in botocore's license-manager 2018-08-01 model (tests/test_contract.py
# checks this copy against the model, so it cannot drift; keys load without the SDK).
ENTITLEMENT_UNITS = frozenset(
    {
        "Count",
        "None",
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
    }
)
# The AWS Marketplace product ID (``prod-...``) is the ProductSKU; the model leaves it an
# unconstrained String, and AWS's own examples show a UUID, so any printable token is accepted.
_PRODUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@=+-]{0,254}")
# A quantity the service compares: a positive decimal, at most 18 digits and 6 decimals.
_VALUE = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?")
_MEMBERS = frozenset({"product_id", "license_model", "entitlements"})
_ENTITLEMENT_MEMBERS = frozenset({"name", "unit", "value"})


class LicenseModel(enum.StrEnum):
    """How the product's license is checked out (module docstring)."""

    TIERED = "tiered"
    COUNTED = "counted"
    FLOATING = "floating"
    DRAWDOWN = "drawdown"

    @property
    def checkout_type(self) -> str:
        """``PERPETUAL`` for drawdown (never returned), ``PROVISIONAL`` otherwise."""
        return "PERPETUAL" if self is LicenseModel.DRAWDOWN else "PROVISIONAL"

    @property
    def returnable(self) -> bool:
        """Whether a checkout is checked in when done (PROVISIONAL checkouts are)."""
        return self is not LicenseModel.DRAWDOWN


@dataclass(frozen=True, slots=True)
class ContractEntitlement:
    """One entitlement the image requires: sent as ``{Name, Unit, Value}`` in the checkout."""

    name: str
    unit: str
    value: str | None = None

    def request(self) -> dict[str, str]:
        """The ``EntitlementData`` member of a CheckoutLicense request."""
        data = {"Name": self.name, "Unit": self.unit}
        if self.value is not None:
            data["Value"] = self.value
        return data

    @property
    def quantity(self) -> Decimal | None:
        return Decimal(self.value) if self.value is not None else None

    def describe(self) -> str:
        return self.name if self.value is None else f"{self.name} {self.value} {self.unit}"


@dataclass(frozen=True, slots=True)
class ContractProduct:
    """What a contract product's image requires of the buyer's license."""

    product_code: str
    product_id: str
    model: LicenseModel
    entitlements: tuple[ContractEntitlement, ...]

    @property
    def checkout_type(self) -> str:
        return self.model.checkout_type

    @property
    def key_fingerprint(self) -> str:
        return MARKETPLACE_KEY_FINGERPRINT

    def requests(self) -> list[dict[str, str]]:
        """The checkout's ``Entitlements``: every tier, or every required entitlement."""
        return [entitlement.request() for entitlement in self.entitlements]

    def describe(self) -> str:
        """``contract prod-x, tiered: Basic | Premium`` / ``... counted: Users 1 Count``."""
        joiner = " | " if self.model is LicenseModel.TIERED else ", "
        wanted = joiner.join(entitlement.describe() for entitlement in self.entitlements)
        return f"contract {self.product_id}, {self.model.value}: {wanted}"


class _DuplicateNameError(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateNameError(
                f"the name {one_line(name, 40)!r} appears twice in one object"
            )
        result[name] = value
    return result


def _refuse_constant(name: str) -> Any:  # noqa: ANN401 - json's parse_constant signature
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: object, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _remedy(where: str) -> str:
    return (
        f"write {where} as keys/README.md shows: product_id, license_model (tiered, counted, "
        "floating or drawdown) and entitlements [{name, unit, value}]"
    )


def _decode(data: bytes, where: str) -> Mapping[str, Any]:
    if len(data) > MAX_CONTRACT_BYTES:
        raise ConfigurationError(
            f"{where} is over the {MAX_CONTRACT_BYTES}-byte cap for a contract file",
            remedy=_remedy(where),
        )
    try:
        text = data.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ConfigurationError(f"{where} is not UTF-8 text", remedy=_remedy(where)) from None
    except RecursionError:
        raise ConfigurationError(f"{where} is nested too deeply", remedy=_remedy(where)) from None
    except ValueError as exc:  # json.JSONDecodeError, a duplicate name, NaN/Infinity
        raise ConfigurationError(
            f"{where} is not valid JSON: {one_line(exc, 120)}", remedy=_remedy(where)
        ) from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where} is not a JSON object", remedy=_remedy(where))
    if _depth(document) > MAX_DEPTH:
        raise ConfigurationError(f"{where} is nested too deeply", remedy=_remedy(where))
    return document


def _text(value: object, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"{where}: {what} must be a non-empty string", remedy=_remedy(where)
        )
    if len(value) > MAX_NAME_LENGTH or not value.isprintable() or value != value.strip():
        raise ConfigurationError(
            f"{where}: {what} {one_line(value, 60)!r} must be 1-{MAX_NAME_LENGTH} printable "
            "characters without surrounding spaces",
            remedy=_remedy(where),
        )
    return value


def _entitlement(item: object, index: int, where: str) -> ContractEntitlement:
    label = f"entitlements[{index}]"
    if not isinstance(item, dict):
        raise ConfigurationError(f"{where}: {label} is not an object", remedy=_remedy(where))
    unknown = sorted(set(item) - _ENTITLEMENT_MEMBERS)
    if unknown:
        raise ConfigurationError(
            f"{where}: {label} has unknown member {one_line(unknown[0], 40)!r}",
            remedy=_remedy(where),
        )
    name = _text(item.get("name"), f"{label}.name", where)
    unit = item.get("unit")
    if unit not in ENTITLEMENT_UNITS:
        shown = (
            "is missing"
            if unit is None
            else f"{one_line(json.dumps(unit), 40)} is not a License Manager unit"
        )
        raise ConfigurationError(
            f"{where}: {label}.unit {shown}",
            remedy="use one of Count, None, Gigabytes, ... (EntitlementDataUnit in the "
            "License Manager API)",
        )
    value = item.get("value")
    if unit == "None":
        if value is not None:
            raise ConfigurationError(
                f"{where}: {label} ({name}) has unit None, which takes no value",
                remedy="a tier is checked out by name only: remove its value",
            )
        return ContractEntitlement(name=name, unit=str(unit))
    if not isinstance(value, str) or _VALUE.fullmatch(value) is None or Decimal(value) <= 0:
        raise ConfigurationError(
            f'{where}: {label} ({name}) needs a value, a positive decimal string such as "1" '
            f"(got {one_line(json.dumps(value), 40)})",
            remedy='a counted entitlement is checked out with a quantity: "value": "1"',
        )
    return ContractEntitlement(name=name, unit=str(unit), value=value)


def _check_model(
    model: LicenseModel, entitlements: Sequence[ContractEntitlement], where: str
) -> None:
    tiers = [e for e in entitlements if e.unit == "None"]
    if model is LicenseModel.TIERED and len(tiers) != len(entitlements):
        raise ConfigurationError(
            f"{where}: a tiered license names its tiers with unit None only",
            remedy='list every tier the image accepts as {"name": "<tier>", "unit": "None"}',
        )
    if model is not LicenseModel.TIERED and tiers:
        raise ConfigurationError(
            f"{where}: a {model.value} license counts its entitlements; {tiers[0].name} has "
            "unit None",
            remedy='give each entitlement its unit and value ({"unit": "Count", "value": "1"}), '
            'or use "license_model": "tiered"',
        )


def parse_contract(
    data: bytes, *, product_code: str, where: str = CONTRACT_FILE
) -> ContractProduct:
    """Parse and check one contract file; raise `ConfigurationError` naming ``where``.

    Guarantees: the result names a product ID, a license model, and 1 to `MAX_ENTITLEMENTS`
    entitlements with distinct names, units of the License Manager API, a positive value for
    each counted one and none for a tier, all of one kind (tiers, or counted entitlements).
    """
    document = _decode(data, where)
    unknown = sorted(set(document) - _MEMBERS)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown member {one_line(unknown[0], 40)!r}", remedy=_remedy(where)
        )
    product_id = _text(document.get("product_id"), "product_id", where)
    if _PRODUCT_ID.fullmatch(product_id) is None:
        raise ConfigurationError(
            f"{where}: product_id {one_line(product_id, 60)!r} is not a product ID",
            remedy="use the product ID (prod-...) the AWS Marketplace Management Portal shows",
        )
    try:
        model = LicenseModel(str(document.get("license_model")))
    except ValueError:
        raise ConfigurationError(
            f"{where}: license_model {one_line(document.get('license_model'), 40)!r} is not one "
            "of tiered, counted, floating, drawdown",
            remedy=_remedy(where),
        ) from None
    items = document.get("entitlements")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ENTITLEMENTS:
        raise ConfigurationError(
            f"{where}: entitlements must be a list of 1 to {MAX_ENTITLEMENTS} objects",
            remedy=_remedy(where),
        )
    entitlements = tuple(_entitlement(item, index, where) for index, item in enumerate(items))
    names = [entitlement.name for entitlement in entitlements]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise ConfigurationError(
            f"{where}: entitlement {one_line(repeated, 60)!r} is listed twice",
            remedy="list each entitlement once",
        )
    _check_model(model, entitlements, where)
    return ContractProduct(
        product_code=product_code, product_id=product_id, model=model, entitlements=entitlements
    )
