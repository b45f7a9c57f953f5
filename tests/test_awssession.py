"""`entrypoint.awssession.AwsSession` alone: what every client and credential fetcher it makes
reads its answers through, and how a credential failure it cannot name is left a bug."""

from __future__ import annotations

import pytest

from entrypoint import ConfigurationError
from entrypoint.awssession import AwsSession, bounded_sender
from entrypoint.capped import BoundedSession, CappedSend
from entrypoint.emulator import Emulator
from entrypoint.sdk import classify_credential_failure

ENVIRONMENT = {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def session(**environ: str) -> AwsSession:
    return AwsSession(connect_timeout=2, read_timeout=3, environ={**ENVIRONMENT, **environ})


def test_every_client_reads_through_its_own_capped_send() -> None:
    aws = session()
    metering = aws.create_client("meteringmarketplace", region_name="us-east-1")
    sts = aws.create_client("sts", region_name="us-east-1")
    assert isinstance(bounded_sender(metering), CappedSend)
    assert bounded_sender(metering) is not bounded_sender(sts)
    # XML with a DTD is refused where botocore parses XML (STS's query protocol), not in JSON.
    assert bounded_sender(sts)._refuse_dtd
    assert not bounded_sender(metering)._refuse_dtd
    # One attempt per call and the bootstrap's timeouts, for clients botocore makes itself too.
    config = sts.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 3)
    assert config.retries["total_max_attempts"] == 1


def test_a_client_from_elsewhere_has_no_bound_to_lend() -> None:
    import botocore.session

    plain = botocore.session.get_session().create_client("sts", region_name="us-east-1")
    with pytest.raises(TypeError, match="was not created by an AwsSession"):
        bounded_sender(plain)


def test_botocores_credential_fetchers_send_through_a_bounded_session(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's providers read os.environ itself.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", emulator.container_credentials_uri)
    aws = session(AWS_CONTAINER_CREDENTIALS_FULL_URI=emulator.container_credentials_uri)
    source = aws.resolve_credentials()
    assert source.method == "container-role"
    resolver = aws.botocore.get_component("credential_provider")
    fetcher = resolver.get_provider("container-role")._fetcher
    assert fetcher._session is aws.container_fetch
    assert isinstance(aws.container_fetch, BoundedSession)
    assert aws.container_fetch.last_status == 200
    assert resolver.get_provider("iam-role")._role_fetcher._session is aws.imds_fetch


def test_a_botocore_whose_fetchers_cannot_be_bounded_is_refused() -> None:
    """Running unbounded is not an option: a botocore without the fetcher attributes this
    version puts its bound on is an internal error (70), said plainly."""
    aws = session()
    aws.botocore.get_component("credential_provider").remove("container-role")
    with pytest.raises(RuntimeError, match="credential fetchers cannot be bounded"):
        aws.resolve_credentials()


def test_a_failure_nobody_classified_stays_a_bug() -> None:
    class SurpriseError(Exception):
        pass

    with pytest.raises(SurpriseError):
        classify_credential_failure(SurpriseError("from our own code"))


def test_the_environment_and_its_files_are_checked_first() -> None:
    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_STS="):
        session(AWS_ENDPOINT_URL_STS="http://[::1")
    with pytest.raises(ConfigurationError, match="AWS_CA_BUNDLE names /dev/zero"):
        session(AWS_CA_BUNDLE="/dev/zero")
