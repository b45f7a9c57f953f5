"""Rebuild the named bad-input assets in tests/assets/keys/ (sigstore's test/assets/ habit).

    .venv/bin/python -m tests.assets.make_assets

Each file is one way a keys directory can hold something that is not a usable Marketplace
public key; tests/test_attacks.py says what the loader must answer for each. Keys are generated
afresh, so a rebuild changes bytes but not meaning. ``jwt-io-demo-private.pem`` is not rebuilt:
it is the jwt.io RS256 demo key as published (its private half is public, which is the point),
checked by fingerprint in the tests.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent / "keys"


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _spki(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]  # every private key type has one
    return bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _armour(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode()])
        + b"\n"
    )


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return b"\x02" + _der_len(len(raw)) + raw


def _der_len(length: int) -> bytes:
    if length < 128:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _pkcs1(n: int, e: int) -> bytes:
    """An ``RSA PUBLIC KEY`` PEM with any modulus and exponent, sane or not."""
    body = _der_int(n) + _der_int(e)
    return _armour("RSA PUBLIC KEY", b"\x30" + _der_len(len(body)) + body)


def _certificate() -> bytes:
    key = _rsa()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a marketplace key")])
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


def _good() -> bytes:
    return _spki(_rsa())


def _modulus() -> int:
    return _rsa().public_key().public_numbers().n


BUILDERS: dict[str, Callable[[], bytes]] = {
    "empty.pem": lambda: b"",
    "not-pem.pem": lambda: b"this is not a key\n",
    "der-spki.pem": lambda: (
        _rsa()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ),
    "openssh.pem": lambda: (
        _rsa()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ),
    "private-pkcs8.pem": lambda: _rsa().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ),
    "private-pkcs1.pem": lambda: _rsa().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ),
    "private-encrypted.pem": lambda: _rsa().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    ),
    "certificate.pem": _certificate,
    "two-keys.pem": lambda: _good() + _good(),
    "key-then-private.pem": lambda: (
        _good()
        + _rsa().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    ),
    "garbage-in-armour.pem": lambda: _armour("PUBLIC KEY", b"\x00" * 40),
    "truncated.pem": lambda: _good()[:200] + b"\n-----END PUBLIC KEY-----\n",
    "begin-without-end.pem": lambda: _good().split(b"-----END")[0],
    "bad-base64.pem": lambda: _good().replace(b"A", b"*", 3),
    "nul-bytes.pem": lambda: _good().replace(b"\n", b"\n\x00", 2),
    "ec-p256.pem": lambda: _spki(ec.generate_private_key(ec.SECP256R1())),
    "ed25519.pem": lambda: _spki(ed25519.Ed25519PrivateKey.generate()),
    "dsa-2048.pem": lambda: _spki(dsa.generate_private_key(key_size=2048)),
    "rsa-1024.pem": lambda: _spki(_rsa(1024)),
    "rsa-2047.pem": lambda: _spki(_rsa(2047)),
    "rsa-exponent-1.pem": lambda: _pkcs1(_modulus(), 1),
    "rsa-exponent-even.pem": lambda: _pkcs1(_modulus(), 65536),
    "rsa-modulus-even.pem": lambda: _pkcs1(_modulus() + 1, 65537),
    "rsa-modulus-negative.pem": lambda: _pkcs1(-_modulus(), 65537),
    "oversized.pem": lambda: _good() + b"#" * (64 * 1024),
    # Variants the loader must accept: what people's editors and portals do to a PEM.
    "ok-crlf.pem": lambda: _good().replace(b"\n", b"\r\n"),
    "ok-text-around.pem": lambda: (
        b"Product prod-abc, key v1, from the portal:\n" + _good() + b"(end)\n"
    ),
    "ok-pkcs1.pem": lambda: (
        _rsa()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    ),
    "ok-rsa-4096.pem": lambda: _spki(_rsa(4096)),
}


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        (HERE / name).write_bytes(build())
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
