"""A contract product's contract.json: parsed as strictly as keys, refused by name, at start and at
image build time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ConfigurationError
from entrypoint.config import Settings, select_product, select_target
from entrypoint.keys import load_trust_store
from entrypoint.license.contract import (
    ENTITLEMENT_UNITS,
    MARKETPLACE_KEY_FINGERPRINT,
    MAX_CONTRACT_BYTES,
    LicenseModel,
    parse_contract,
)

from .license_support import CONTRACT_CODE, PRODUCT_ID, contract_document, write_contract
from .support import REPO

WHERE = "keys/prod-c/contract.json"


def parse(document: object) -> object:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_contract(data, product_code="prod-c", where=WHERE)


@pytest.mark.parametrize(
    ("model", "checkout_type", "returnable"),
    [
        ("tiered", "PROVISIONAL", True),
        ("counted", "PROVISIONAL", True),
        ("floating", "PROVISIONAL", True),
        ("drawdown", "PERPETUAL", False),
    ],
)
def test_each_license_model_parses_with_its_checkout_type(
    model: str, checkout_type: str, returnable: bool
) -> None:
    contract = parse(contract_document(model))
    assert contract.model is LicenseModel(model)  # type: ignore[attr-defined]
    assert contract.checkout_type == checkout_type  # type: ignore[attr-defined]
    assert contract.model.returnable is returnable  # type: ignore[attr-defined]
    assert contract.product_id == PRODUCT_ID  # type: ignore[attr-defined]
    assert contract.key_fingerprint == MARKETPLACE_KEY_FINGERPRINT  # type: ignore[attr-defined]


def test_tiers_are_requested_by_name_with_unit_none_and_counts_with_their_value() -> None:
    tiered = parse(contract_document("tiered"))
    assert tiered.requests() == [  # type: ignore[attr-defined]
        {"Name": "Basic", "Unit": "None"},
        {"Name": "Premium", "Unit": "None"},
    ]
    counted = parse(contract_document("counted"))
    assert counted.requests() == [{"Name": "Users", "Unit": "Count", "Value": "1"}]  # type: ignore[attr-defined]
    assert counted.describe() == f"contract {PRODUCT_ID}, counted: Users 1 Count"  # type: ignore[attr-defined]


def test_the_unit_list_is_the_license_manager_models() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("license-manager")
    shape: Any = model.shape_for("EntitlementDataUnit")  # a StringShape, with its enum
    assert frozenset(shape.enum) == ENTITLEMENT_UNITS


def test_the_pinned_fingerprint_is_aws_marketplaces() -> None:
    # Seller guide: "the key-fingerprint isn't a placeholder value but the actual value".
    assert MARKETPLACE_KEY_FINGERPRINT == "aws:294406891311:AWS/Marketplace:issuer-fingerprint"


def _doc(**changes: object) -> dict[str, object]:
    document: dict[str, object] = contract_document("counted")
    document.update(changes)
    return document


def _item(**changes: object) -> dict[str, object]:
    item: dict[str, object] = {"name": "Users", "unit": "Count", "value": "1"}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"{", "is not valid JSON"),
        (b"[]", "is not a JSON object"),
        (b'{"product_id": "a", "product_id": "b"}', "appears twice"),
        (b'{"product_id": NaN}', "NaN is not a JSON number"),
        (b" " * (MAX_CONTRACT_BYTES + 1), f"over the {MAX_CONTRACT_BYTES}-byte cap"),
        (b'{"a": {"b": {"c": {"d": {}}}}}', "nested too deeply"),
        (b"[" * 8000 + b"]" * 8000, "nested too deeply"),  # RecursionError in json
        (_doc(entitlement=[]), "unknown member 'entitlement'"),
        (_doc(product_id=""), "product_id must be a non-empty string"),
        (_doc(product_id=7), "product_id must be a non-empty string"),
        (_doc(product_id="prod x"), "is not a product ID"),
        (_doc(product_id=" prod-x"), "without surrounding spaces"),
        (_doc(product_id="prod-\u0000"), "printable characters"),
        (_doc(license_model="hourly"), "is not one of tiered, counted, floating, drawdown"),
        (_doc(license_model=None), "is not one of tiered"),
        (_doc(entitlements=[]), "entitlements must be a list of 1 to 32 objects"),
        (_doc(entitlements={"name": "Users"}), "entitlements must be a list"),
        (_doc(entitlements=[_item(name=f"E{i}") for i in range(33)]), "list of 1 to 32"),
        (_doc(entitlements=["Users"]), "entitlements[0] is not an object"),
        (_doc(entitlements=[_item(quantity="1")]), "unknown member 'quantity'"),
        (_doc(entitlements=[_item(name="")]), "entitlements[0].name must be a non-empty"),
        (_doc(entitlements=[_item(name="x" * 256)]), "1-255 printable characters"),
        (_doc(entitlements=[_item(unit="Seats")]), '"Seats" is not a License Manager unit'),
        (_doc(entitlements=[_item(unit=None)]), "entitlements[0].unit is missing"),
        (_doc(entitlements=[_item(value=None)]), "needs a value, a positive decimal string"),
        (_doc(entitlements=[_item(value=1)]), "needs a value"),
        (_doc(entitlements=[_item(value="0")]), "needs a value"),
        (_doc(entitlements=[_item(value="-1")]), "needs a value"),
        (_doc(entitlements=[_item(value="01")]), "needs a value"),
        (_doc(entitlements=[_item(value="1e3")]), "needs a value"),
        (_doc(entitlements=[_item(), _item()]), "entitlement 'Users' is listed twice"),
        (
            _doc(license_model="tiered", entitlements=[{"name": "Basic", "unit": "None"}, _item()]),
            "a tiered license names its tiers with unit None only",
        ),
        (
            _doc(entitlements=[_item(), {"name": "Premium", "unit": "None"}]),
            "a counted license counts its entitlements; Premium has unit None",
        ),
        (
            _doc(
                license_model="tiered",
                entitlements=[{"name": "Basic", "unit": "None", "value": "1"}],
            ),
            "has unit None, which takes no value",
        ),
    ],
)
def test_a_bad_contract_is_refused_with_its_reason(document: object, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=WHERE) as caught:
        parse(document)
    assert reason in caught.value.reason, caught.value.reason
    assert caught.value.exit_code == 78


# -- in the keys directory -----------------------------------------------------------------------


def test_a_contract_product_loads_beside_metered_products(keys_dir: Path) -> None:
    write_contract(keys_dir, "tiered")
    trust = load_trust_store(keys_dir)
    product = trust.product(CONTRACT_CODE)
    assert product.contract is not None
    assert product.keys == {}
    assert f"{CONTRACT_CODE} (contract {PRODUCT_ID}, tiered: Basic | Premium)" in trust.describe()
    assert "prod-test (v1)" in trust.describe()


def test_a_folder_with_keys_and_a_contract_is_refused(keys_dir: Path) -> None:
    write_contract(keys_dir, product_code="prod-test")
    with pytest.raises(ConfigurationError, match=r"holds both public keys and contract\.json"):
        load_trust_store(keys_dir)


def test_a_contract_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / CONTRACT_CODE / "contract.json").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match=r"contract\.json is not a regular file"):
        load_trust_store(tmp_path)


def test_an_oversized_contract_is_refused_unread(tmp_path: Path) -> None:
    write_contract(tmp_path, raw=b"{" + b" " * (10 * MAX_CONTRACT_BYTES))
    with pytest.raises(ConfigurationError, match="over the 16384-byte cap"):
        load_trust_store(tmp_path)


def test_a_folder_with_neither_names_both_remedies(tmp_path: Path) -> None:
    (tmp_path / CONTRACT_CODE).mkdir()
    with pytest.raises(ConfigurationError, match=r"no v<N>\.pem key and no contract\.json"):
        load_trust_store(tmp_path)


def test_a_contract_product_is_selected_but_has_no_register_usage_target(tmp_path: Path) -> None:
    write_contract(tmp_path)
    trust = load_trust_store(tmp_path)
    settings = Settings(keys_dir=tmp_path)
    assert select_product(settings, trust).code == CONTRACT_CODE
    with pytest.raises(ConfigurationError, match="is contract-priced"):
        select_target(settings, trust)


# -- at image build time ---------------------------------------------------------------------------


def check_keys(keys_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "docker/image_build.py"),
            "check-keys",
            str(keys_dir),
            "--lib",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_image_build_accepts_a_valid_contract(tmp_path: Path) -> None:
    done = check_keys(write_contract(tmp_path, "tiered"))
    assert done.returncode == 0, done.stderr
    assert f"the image trusts {CONTRACT_CODE} (contract {PRODUCT_ID}, tiered" in done.stdout


def test_image_build_refuses_an_invalid_contract(tmp_path: Path) -> None:
    done = check_keys(write_contract(tmp_path, entitlements=[{"name": "Users", "unit": "Count"}]))
    assert done.returncode == 1
    assert "the image would refuse to start: configuration error:" in done.stderr
    assert "needs a value" in done.stderr
