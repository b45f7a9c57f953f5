"""TLS is the only protection of a License Manager answer: what the environment may not change.

A real TLS server on loopback, with a certificate from a CA of the test's own, answers every
request "entitled", as a buyer's TLS-inspecting proxy or a server of their own would. Whatever
the environment says about CAs (``AWS_CA_BUNDLE``, a config file's ``ca_bundle``,
``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``), the pinned client trusts only the
image's bundle: the handshake fails and the server never sees a request. The controls show the
server does answer when the CA is the caller's explicit choice or the ENTRYPOINT flag allows it.
The endpoint variables and config files are refused by the client before any connection
(tests/test_license_bootstrap.py runs those on the console script).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from entrypoint import ConfigurationError
from entrypoint.license.client import BotocoreLicenseClient
from entrypoint.license.contract import parse_contract
from entrypoint.metering import StaticCredentials

from .license_support import contract_document
from .support import base_env, run_cli

CONTRACT = parse_contract(json.dumps(contract_document("tiered")).encode(), product_code="prod-c")
CREDENTIALS = StaticCredentials("AKIAEMULATOREXAMPLE1", "secret")


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if subject == issuer[0]:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer[1], hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA (its PEM, and a hashed directory for SSL_CERT_DIR) and a server certificate."""
    root = tmp_path_factory.mktemp("pki")
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("hostile CA", ca_key, ("hostile CA", ca_key))
    leaf = _certificate("127.0.0.1", leaf_key, ("hostile CA", ca_key))
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "server.pem").write_bytes(leaf.public_bytes(pem))
    (root / "server.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cadir = root / "cadir"
    cadir.mkdir()
    (cadir / "ca.pem").write_bytes(ca.public_bytes(pem))
    return {
        "ca": root / "ca.pem",
        "cert": root / "server.pem",
        "key": root / "server.key",
        "cadir": cadir,
    }


class _Entitled(BaseHTTPRequestHandler):
    """Answers any request with an "entitled" CheckoutLicense answer."""

    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests.append(self.headers.get("X-Amz-Target", ""))
        now = dt.datetime.now(dt.UTC)
        body = json.dumps(
            {
                "CheckoutType": "PROVISIONAL",
                "EntitlementsAllowed": [{"Name": "Premium", "Unit": "None"}],
                "IssuedAt": now.isoformat(),
                "Expiration": (now + dt.timedelta(hours=1)).isoformat(),
                "LicenseConsumptionToken": "forged",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile(pki: dict[str, Path]) -> Iterator[str]:
    """The https URL of a server that answers every request "entitled"."""
    _Entitled.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Entitled)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def task_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in base_env("http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "NIX_SSL_CERT_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def client(url: str, **options: object) -> BotocoreLicenseClient:
    return BotocoreLicenseClient(
        region="us-east-1",
        endpoint_url=url,
        credentials=CREDENTIALS,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.usefixtures("task_environment")
@pytest.mark.parametrize(
    "variable", ["AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"]
)
def test_a_ca_from_the_environment_is_never_trusted(
    hostile: str, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, str(pki["cadir"] if variable == "SSL_CERT_DIR" else pki["ca"]))
    with pytest.raises(ConfigurationError, match="TLS to the License Manager endpoint failed"):
        client(hostile).checkout(CONTRACT, client_token="t", timeout=5)
    assert _Entitled.requests == []  # the handshake failed: nothing was asked


@pytest.mark.usefixtures("task_environment")
def test_a_config_file_ca_bundle_is_never_trusted(
    hostile: str, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(f"[default]\nca_bundle = {pki['ca']}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    with pytest.raises(ConfigurationError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        client(hostile).checkout(CONTRACT, client_token="t", timeout=5)
    assert "a TLS-inspecting proxy cannot be used" in caught.value.diagnosis()
    assert _Entitled.requests == []


@pytest.mark.usefixtures("task_environment")
def test_control_the_server_answers_a_caller_who_trusts_its_ca(
    hostile: str, pki: dict[str, Path]
) -> None:
    answer = client(hostile, ca_bundle=str(pki["ca"])).checkout(CONTRACT, client_token="t")
    assert answer.entitlements[0].name == "Premium"
    assert _Entitled.requests == ["AWSLicenseManager.CheckoutLicense"]


@pytest.mark.usefixtures("task_environment")
def test_control_the_flag_lets_aws_ca_bundle_through(
    hostile: str, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(pki["ca"]))
    answer = client(hostile, allow_overrides=True).checkout(CONTRACT, client_token="t")
    assert answer.consumption_token == "forged"
    assert len(_Entitled.requests) == 1


@pytest.mark.usefixtures("task_environment")
def test_the_pinned_bundle_is_botocores_own() -> None:
    from botocore.httpsession import get_cert_path

    pinned = BotocoreLicenseClient(region="us-east-1", credentials=CREDENTIALS)
    assert pinned.prepare() == "https://license-manager.us-east-1.amazonaws.com"
    assert pinned.verify == get_cert_path(verify=True)


def test_check_shows_the_pinned_endpoint_and_bundle_and_warns_of_ignored_cas(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    from botocore.httpsession import get_cert_path

    keys = tmp_path / "keys" / "prod-c"
    keys.mkdir(parents=True)
    (keys / "contract.json").write_text(json.dumps(contract_document("tiered")))
    env = base_env("http://127.0.0.1:9", AWS_CA_BUNDLE=str(pki["ca"]), SSL_CERT_FILE=str(pki["ca"]))
    run = run_cli(["check", "--keys-dir", str(tmp_path / "keys")], env)
    assert run.returncode == 0, run.stderr
    assert (
        "endpoint     https://license-manager.us-east-1.amazonaws.com (pinned: environment "
        "overrides refused)" in run.stdout
    )
    assert f"tls          verified with {get_cert_path(verify=True)}" in run.stdout
    assert "license      not checked out (add --call" in run.stdout
    assert "AWS_CA_BUNDLE, SSL_CERT_FILE ignored for License Manager" in run.stderr
