from __future__ import annotations

import pytest

from entrypoint import ConfigurationError
from entrypoint.region import default_region_chain, resolve_region


def resolve(env: dict[str, str]) -> tuple[str, str]:
    region = resolve_region(default_region_chain(env))
    return region.name, region.source


def test_aws_region_wins() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}
    assert resolve(env) == ("eu-west-1", "AWS_REGION")


def test_aws_default_region_is_the_fallback() -> None:
    assert resolve({"AWS_DEFAULT_REGION": "us-gov-west-1"}) == (
        "us-gov-west-1",
        "AWS_DEFAULT_REGION",
    )


def test_empty_variables_are_skipped() -> None:
    assert resolve({"AWS_REGION": " ", "AWS_DEFAULT_REGION": "cn-north-1"})[0] == "cn-north-1"


def test_no_region_names_both_variables() -> None:
    with pytest.raises(ConfigurationError, match="tried AWS_REGION, AWS_DEFAULT_REGION") as caught:
        resolve({})
    assert caught.value.remedy is not None
    assert "AWS_REGION" in caught.value.remedy


@pytest.mark.parametrize("value", ["US-EAST-1", "us_east_1", "useast", "us-east-1.evil.com", "x"])
def test_malformed_region_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^AWS_REGION=.* is not an AWS Region name"):
        resolve({"AWS_REGION": value})
