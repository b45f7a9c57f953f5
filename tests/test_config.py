"""Settings: defaults, precedence, and every invalid value refused before any network call."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoint import ConfigurationError, ExitCode, UsageError
from entrypoint.config import LogFormat, Settings, parse_settings, select_target
from entrypoint.keys import DEFAULT_KEYS_DIR, TrustedProduct, TrustStore

from .support import KEYS

KEY1 = KEYS.get("config", 1).public_key()
KEY2 = KEYS.get("config", 2).public_key()


def store(*codes: str) -> TrustStore:
    return TrustStore(
        root=Path("/keys"),
        products={c: TrustedProduct(code=c, keys={1: KEY1, 2: KEY2}) for c in codes},
    )


def test_defaults() -> None:
    settings = parse_settings({}, {})
    assert settings.keys_dir == DEFAULT_KEYS_DIR
    assert settings.deadline == 1800.0
    assert settings.log_format is LogFormat.TEXT
    assert settings.product_code is None
    assert settings.sources["deadline"] == "default"


def test_environment_fills_what_flags_do_not() -> None:
    settings = parse_settings(
        {"deadline": "60"},
        {
            "MARKETPLACE_RETRY_DEADLINE": "90",
            "MARKETPLACE_PRODUCT_CODE": "prod-a",
            "MARKETPLACE_PUBLIC_KEY_VERSION": "2",
            "MARKETPLACE_LOG_FORMAT": "JSON",
        },
    )
    assert settings.deadline == 60.0
    assert settings.sources["deadline"] == "--deadline"
    assert settings.product_code == "prod-a"
    assert settings.public_key_version == 2
    assert settings.log_format is LogFormat.JSON


def test_empty_environment_variables_count_as_unset() -> None:
    assert parse_settings({}, {"MARKETPLACE_RETRY_DEADLINE": ""}).deadline == 1800.0


def test_keys_dir_is_never_read_from_the_environment() -> None:
    settings = parse_settings({}, {"MARKETPLACE_KEYS_DIR": "/tmp/evil"})
    assert settings.keys_dir == DEFAULT_KEYS_DIR


INVALID = [
    ("deadline", "abc", "is not a number of seconds"),
    ("deadline", "0", "outside 0.1..21600 seconds"),
    ("deadline", "-5", "outside"),
    ("deadline", "nan", "outside"),
    ("deadline", "inf", "outside"),
    ("deadline", "99999", "outside"),
    ("public_key_version", "0", "is not a key version"),
    ("public_key_version", "v1", "is not a whole number"),
    ("public_key_version", "1.0", "is not a whole number"),
    ("public_key_version", "\u0661", "is not a whole number"),  # Arabic-Indic digit one
    ("product_code", "prod a", "is not a product code"),
    ("product_code", "p" * 256, "is not a product code"),
    ("log_format", "xml", "is not one of: text, json"),
    ("connect_timeout", "0", "outside"),
    ("read_timeout", "1e9", "outside"),
    ("retry_base_delay", "x", "is not a number"),
]


@pytest.mark.parametrize(("name", "value", "reason"), INVALID)
def test_invalid_flag_is_a_usage_error_naming_flag_and_variable(
    name: str, value: str, reason: str
) -> None:
    with pytest.raises(UsageError, match=reason) as caught:
        parse_settings({name: value}, {})
    flag = "--" + name.replace("_", "-")
    assert caught.value.reason.startswith(f"{flag}=")
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(("name", "value", "reason"), INVALID)
def test_invalid_environment_is_a_configuration_error_naming_it(
    name: str, value: str, reason: str
) -> None:
    from entrypoint.config import ENV

    with pytest.raises(ConfigurationError, match=reason) as caught:
        parse_settings({}, {ENV[name]: value})
    assert caught.value.reason.startswith(f"{ENV[name]}=")
    assert caught.value.exit_code == ExitCode.CONFIGURATION


def test_invalid_api_argument_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"^deadline='-1' is invalid"):
        parse_settings({"deadline": "-1"}, {}, given_as="argument")


def test_max_delay_under_base_delay() -> None:
    with pytest.raises(ConfigurationError, match="retry max delay 1s is under the base delay 5s"):
        Settings(retry_base_delay=5, retry_max_delay=1)


def test_target_defaults_to_the_only_product_and_the_highest_version() -> None:
    target = select_target(Settings(), store("prod-a"))
    assert (target.product_code, target.public_key_version) == ("prod-a", 2)
    assert target.public_key is KEY2


def test_target_with_several_products_needs_a_choice() -> None:
    with pytest.raises(ConfigurationError, match="trusts several products") as caught:
        select_target(Settings(), store("prod-a", "prod-b"))
    assert caught.value.remedy is not None
    assert "MARKETPLACE_PRODUCT_CODE" in caught.value.remedy


def test_target_product_must_be_trusted() -> None:
    with pytest.raises(ConfigurationError, match="'prod-free' is not trusted"):
        select_target(Settings(product_code="prod-free"), store("prod-a"))


def test_target_version_must_be_present() -> None:
    with pytest.raises(ConfigurationError, match="no public key version 5"):
        select_target(Settings(product_code="prod-a", public_key_version=5), store("prod-a"))
