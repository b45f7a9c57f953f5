"""Shared machinery of the contract-product (License Manager) suites."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator

from .support import base_env

FINGERPRINT = "aws:294406891311:AWS/Marketplace:issuer-fingerprint"
CONTRACT_CODE = "prod-code-contract"  # the product folder (the product code)
PRODUCT_ID = "prod-abcdefghijklm"  # the Marketplace product ID: the ProductSKU
ALLOW = "--allow-license-endpoint-override"
SEAT = {"name": "Users", "unit": "Count", "value": "1"}
TIERS = [{"name": "Basic", "unit": "None"}, {"name": "Premium", "unit": "None"}]


def contract_document(
    model: str = "floating",
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    product_id: str = PRODUCT_ID,
) -> dict[str, Any]:
    if entitlements is None:
        entitlements = TIERS if model == "tiered" else [SEAT]
    return {"product_id": product_id, "license_model": model, "entitlements": list(entitlements)}


def write_contract(
    keys_dir: Path,
    model: str = "floating",
    entitlements: Sequence[Mapping[str, Any]] | None = None,
    *,
    product_code: str = CONTRACT_CODE,
    product_id: str = PRODUCT_ID,
    raw: bytes | None = None,
) -> Path:
    """``<keys_dir>/<product_code>/contract.json``; returns the keys directory."""
    folder = keys_dir / product_code
    folder.mkdir(parents=True, exist_ok=True)
    data = (
        raw
        if raw is not None
        else json.dumps(contract_document(model, entitlements, product_id)).encode()
    )
    (folder / "contract.json").write_bytes(data)
    return keys_dir


def license_env(emulator: Emulator, **overrides: str | None) -> dict[str, str]:
    """A task environment pointed at the emulator's License Manager (honoured only with
    ``--allow-license-endpoint-override``)."""
    return base_env(emulator, **{"AWS_ENDPOINT_URL_LICENSE_MANAGER": emulator.url, **overrides})


def lm_client(emulator: Emulator, *, region: str | None = None, validate: bool = True) -> Any:
    """An unmodified boto3 License Manager client pointed at ``emulator``."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "license-manager",
        region_name=region or emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=EMULATOR_ACCESS_KEY_ID,
        aws_secret_access_key=EMULATOR_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )


def checkout(client: Any, entitlements: Sequence[Mapping[str, str]], **extra: Any) -> Any:
    """A CheckoutLicense of ``entitlements`` for `PRODUCT_ID` from the Marketplace issuer."""
    params: dict[str, Any] = {
        "ProductSKU": PRODUCT_ID,
        "CheckoutType": "PROVISIONAL",
        "KeyFingerprint": FINGERPRINT,
        "Entitlements": list(entitlements),
        "ClientToken": extra.pop("ClientToken", None) or _token(),
    }
    params.update(extra)
    return client.checkout_license(**params)


def _token() -> str:
    import secrets

    return secrets.token_hex(16)


SEAT_REQUEST = [{"Name": "Users", "Unit": "Count", "Value": "1"}]
TIER_REQUEST = [{"Name": "Basic", "Unit": "None"}, {"Name": "Premium", "Unit": "None"}]
