"""The emulator's signing keys and tokens: PS256 JWTs like the ones RegisterUsage returns.

Each (product, key version) gets its own RSA key pair, made on first use, as AWS keeps keys per
product. `write_keys` lays the public halves out as a keys directory the entrypoint trusts.
Tokens are signed with pyjwt, an implementation independent of our verifier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["KeyFactory", "TokenSigner", "generate_key"]

KeyFactory = Callable[[str, int], rsa.RSAPrivateKey]


def generate_key(_product_code: str = "", _version: int = 0) -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (about 50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TokenSigner:
    """Holds one private key per (product code, key version)."""

    def __init__(self, key_factory: KeyFactory = generate_key) -> None:
        self._factory = key_factory
        self._keys: dict[tuple[str, int], rsa.RSAPrivateKey] = {}
        self._lock = threading.Lock()

    def private_key(self, product_code: str, version: int) -> rsa.RSAPrivateKey:
        with self._lock:
            key = self._keys.get((product_code, version))
            if key is None:
                key = self._factory(product_code, version)
                self._keys[(product_code, version)] = key
            return key

    def public_key(self, product_code: str, version: int) -> rsa.RSAPublicKey:
        return self.private_key(product_code, version).public_key()

    def sign(self, claims: Mapping[str, Any], product_code: str, version: int) -> str:
        return jwt.encode(dict(claims), self.private_key(product_code, version), algorithm="PS256")

    def public_pem(self, product_code: str, version: int) -> bytes:
        return self.public_key(product_code, version).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_keys(self, directory: Path | str, products: Mapping[str, Iterable[int]]) -> Path:
        """Write ``<directory>/<product>/v<N>.pem`` for every product and version; mode 0644."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for code, versions in products.items():
            folder = root / code
            folder.mkdir(exist_ok=True)
            for version in versions:
                path = folder / f"v{version}.pem"
                path.write_bytes(self.public_pem(code, version))
                path.chmod(0o644)
        return root
