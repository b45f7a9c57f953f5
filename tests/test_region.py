from __future__ import annotations

import pytest

from entrypoint import ConfigurationError
from entrypoint.emulator import Emulator
from entrypoint.region import (
    EcsTaskMetadataRegion,
    InstanceMetadataRegion,
    RegionLookupError,
    default_region_chain,
    resolve_region,
)


def resolve(env: dict[str, str]) -> tuple[str, str]:
    """The default chain, with IMDS off unless the test points it somewhere."""
    region = resolve_region(default_region_chain({"AWS_EC2_METADATA_DISABLED": "true", **env}))
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
    with pytest.raises(
        ConfigurationError,
        match="tried AWS_REGION, AWS_DEFAULT_REGION, ECS task metadata, EC2 instance metadata",
    ) as caught:
        resolve({})
    assert caught.value.remedy is not None
    assert "AWS_REGION" in caught.value.remedy


@pytest.mark.parametrize("value", ["US-EAST-1", "us_east_1", "useast", "us-east-1.evil.com", "x"])
def test_malformed_region_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^AWS_REGION=.* is not an AWS Region name"):
        resolve({"AWS_REGION": value})


# -- metadata sources, against the emulator's platform endpoints ----------------------------------


def test_ecs_task_metadata_region_comes_from_the_task_arn(emulator: Emulator) -> None:
    env = {"ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri}
    assert resolve(env) == (emulator.region, "ECS task metadata")


def test_ecs_task_metadata_without_task_arn_uses_the_zone(emulator: Emulator) -> None:
    emulator.platform.configure(task_arn=False)
    assert (
        EcsTaskMetadataRegion({"ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri}).lookup()
        == emulator.region
    )


def test_ecs_task_metadata_with_neither_field(emulator: Emulator) -> None:
    emulator.platform.configure(task_arn=False, availability_zone=False)
    source = EcsTaskMetadataRegion({"ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri})
    with pytest.raises(RegionLookupError, match="neither a TaskARN nor an Availability Zone"):
        source.lookup()


def test_ecs_task_metadata_unreachable() -> None:
    with Emulator() as closed:
        url = closed.url
    source = EcsTaskMetadataRegion({"ECS_CONTAINER_METADATA_URI_V4": url + "/ecs/v4/x"})
    with pytest.raises(
        RegionLookupError,
        match=r"(?i)EndpointConnectionError: could not connect .*Connection refused",
    ):
        source.lookup()


@pytest.mark.parametrize(
    ("zone", "region"),
    [
        ("us-west-2a", "us-west-2"),
        ("us-gov-east-1b", "us-gov-east-1"),
        ("ap-southeast-5c", "ap-southeast-5"),
    ],
)
def test_availability_zone_to_region(zone: str, region: str) -> None:
    from entrypoint.region import _AVAILABILITY_ZONE

    match = _AVAILABILITY_ZONE.fullmatch(zone)
    assert match is not None
    assert match.group(1) == region


@pytest.mark.parametrize("zone", ["us-west-2-lax-1a", "use1-az1", "us-west-2", ""])
def test_local_zones_and_zone_ids_are_not_regions(zone: str) -> None:
    from entrypoint.region import _AVAILABILITY_ZONE

    assert _AVAILABILITY_ZONE.fullmatch(zone) is None


def test_imds_v2_region(emulator: Emulator) -> None:
    source = InstanceMetadataRegion({"AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.imds_endpoint})
    assert source.lookup() == emulator.region
    operations = [c.operation for c in emulator.calls()]
    assert operations == ["PUT /latest/api/token", "GET /latest/meta-data/placement/region"]


def test_imds_disabled_is_not_asked(emulator: Emulator) -> None:
    env = {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.imds_endpoint,
        "AWS_EC2_METADATA_DISABLED": "TRUE",
    }
    assert InstanceMetadataRegion(env).lookup() is None
    assert emulator.calls() == []


def test_chain_order_environment_before_metadata(emulator: Emulator) -> None:
    env = {
        "AWS_DEFAULT_REGION": "eu-central-1",
        "ECS_CONTAINER_METADATA_URI_V4": emulator.ecs_metadata_uri,
    }
    assert resolve(env) == ("eu-central-1", "AWS_DEFAULT_REGION")
    assert emulator.calls() == []
