"""The keys directory is the allow-list: every refusal, by name, with the file it names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from entrypoint import ConfigurationError, UntrustedKeyError, load_public_key_pem, load_trust_store
from entrypoint.keys import MAX_KEY_FILE_BYTES, spki_fingerprint

from .support import JWT_IO_DEMO_FINGERPRINT, JWT_IO_DEMO_PUBLIC_PEM, KEYS

GOOD = KEYS.get("keys-good")


def pem(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    fmt: serialization.PublicFormat = serialization.PublicFormat.SubjectPublicKeyInfo,
) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def write(root: Path, relative: str, data: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_loads_products_and_versions(tmp_path: Path) -> None:
    write(tmp_path, "prod-a/v1.pem", pem(GOOD))
    write(tmp_path, "prod-a/v2.pem", pem(KEYS.get("keys-good", 2)))
    write(tmp_path, "prod-b/v7.pem", pem(GOOD))
    store = load_trust_store(tmp_path)
    assert sorted(store.products) == ["prod-a", "prod-b"]
    assert store.product("prod-a").latest_version == 2
    assert store.key("prod-b", 7).public_numbers() == GOOD.public_key().public_numbers()
    assert store.describe() == "prod-a (v1, v2), prod-b (v7)"


def test_readme_and_hidden_entries_beside_products_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "README.md", b"put keys here")
    write(tmp_path, "..data/junk", b"kubernetes projection")
    write(tmp_path, "prod-a/.keep", b"")
    write(tmp_path, "prod-a/v1.pem", pem(GOOD))
    assert list(load_trust_store(tmp_path).products) == ["prod-a"]


def test_symlinked_key_files_are_followed(tmp_path: Path) -> None:
    target = write(tmp_path, "store/real.pem", pem(GOOD))
    (tmp_path / "keys" / "prod-a").mkdir(parents=True)
    (tmp_path / "keys" / "prod-a" / "v1.pem").symlink_to(target)
    assert load_trust_store(tmp_path / "keys").product("prod-a").latest_version == 1


def test_pkcs1_rsa_public_key_pem_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "prod-a/v1.pem", pem(GOOD, serialization.PublicFormat.PKCS1))
    assert load_trust_store(tmp_path).key("prod-a", 1).key_size == 2048


def test_the_denylisted_fingerprint_is_the_jwt_io_key_from_the_facts() -> None:
    demo = serialization.load_pem_public_key(JWT_IO_DEMO_PUBLIC_PEM)
    der = demo.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(der).hexdigest() == JWT_IO_DEMO_FINGERPRINT
    assert spki_fingerprint(demo) == JWT_IO_DEMO_FINGERPRINT  # type: ignore[arg-type]


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _private_pem() -> bytes:
    return GOOD.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


BAD_FILES = [
    ("not pem", b"hello", r"is not PEM \(no '-----BEGIN PUBLIC KEY-----' line\)"),
    ("empty", b"", "is not PEM"),
    (
        "der",
        GOOD.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "is not PEM",
    ),
    ("private key", _private_pem(), r"holds a private key \(PRIVATE KEY\)"),
    ("certificate", _certificate(), "holds a CERTIFICATE, not a PUBLIC KEY"),
    ("two blocks", pem(GOOD) + pem(GOOD), r"holds 2 PEM blocks \(PUBLIC KEY, PUBLIC KEY\)"),
    (
        "garbage in armour",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "is not a valid PEM public key",
    ),
    ("ec key", pem(ec.generate_private_key(ec.SECP256R1())), "not an RSA public key"),
    (
        "1024-bit key",
        pem(KEYS.get("keys-small", bits=1024)),
        "is a 1024-bit RSA key, under the 2048-bit minimum",
    ),
    ("jwt.io demo key", JWT_IO_DEMO_PUBLIC_PEM, "jwt.io RS256 demo key from AWS's documentation"),
    ("oversized", b"-" * (MAX_KEY_FILE_BYTES + 1), "over the 65536-byte cap"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in BAD_FILES], ids=[n for n, _, _ in BAD_FILES]
)
def test_bad_key_file_is_refused_naming_the_file(tmp_path: Path, data: bytes, reason: str) -> None:
    path = write(tmp_path, "prod-a/v1.pem", data)
    with pytest.raises(UntrustedKeyError, match=reason) as caught:
        load_trust_store(tmp_path)
    assert str(path) in caught.value.reason


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in BAD_FILES], ids=[n for n, _, _ in BAD_FILES]
)
def test_load_public_key_pem_refuses_the_same(data: bytes, reason: str) -> None:
    with pytest.raises(UntrustedKeyError, match=reason):
        load_public_key_pem(data)


@pytest.mark.parametrize(
    "name", ["key.pem", "v0.pem", "v01.pem", "V1.pem", "v1.PEM", "v1.pem.bak", "v-1.pem", "README"]
)
def test_misnamed_file_in_a_product_folder_is_refused(tmp_path: Path, name: str) -> None:
    write(tmp_path, "prod-a/v1.pem", pem(GOOD))
    write(tmp_path, f"prod-a/{name}", pem(GOOD))
    with pytest.raises(ConfigurationError, match=f"unexpected file .*{name.replace('.', '[.]')}"):
        load_trust_store(tmp_path)


def test_key_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prod-a" / "v1.pem").mkdir(parents=True)
    with pytest.raises(UntrustedKeyError, match="is not a regular file"):
        load_trust_store(tmp_path)


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prod-a").mkdir()
    (tmp_path / "prod-a" / "v1.pem").symlink_to(tmp_path / "missing.pem")
    with pytest.raises(UntrustedKeyError, match="could not be read"):
        load_trust_store(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: permission checks are moot")
def test_unreadable_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "prod-a/v1.pem", pem(GOOD))
    path.chmod(0)
    with pytest.raises(UntrustedKeyError, match="is not readable by this user"):
        load_trust_store(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        load_trust_store(tmp_path / "nope")
    assert caught.value.remedy is not None
    assert "keys/README.md" in caught.value.remedy


def test_directory_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a directory"):
        load_trust_store(write(tmp_path, "file", b""))


def test_empty_directory_trusts_nothing(tmp_path: Path) -> None:
    write(tmp_path, "README.md", b"")
    with pytest.raises(ConfigurationError, match="trusts no product"):
        load_trust_store(tmp_path)


def test_product_folder_without_keys(tmp_path: Path) -> None:
    (tmp_path / "prod-a").mkdir()
    with pytest.raises(ConfigurationError, match=r"holds no v<N>\.pem key"):
        load_trust_store(tmp_path)


@pytest.mark.parametrize("name", ["bad name", "prod#1", "prod\u00e9"])
def test_product_folder_not_named_like_a_product_code(tmp_path: Path, name: str) -> None:
    write(tmp_path, f"{name}/v1.pem", pem(GOOD))
    with pytest.raises(ConfigurationError, match="is not named like a product code"):
        load_trust_store(tmp_path)


def test_untrusted_product_and_missing_version_name_what_is_trusted(tmp_path: Path) -> None:
    write(tmp_path, "prod-a/v1.pem", pem(GOOD))
    store = load_trust_store(tmp_path)
    with pytest.raises(ConfigurationError, match=r"'prod-free' is not trusted .*prod-a \(v1\)"):
        store.product("prod-free")
    with pytest.raises(ConfigurationError, match=r"no public key version 3 .*present: v1"):
        store.key("prod-a", 3)
