"""Verification cost: ``verify_signature`` per token against the floor, a bare cryptography
RSA-PSS verify of the same token (what any verifier must do at least), with a bare ``jwt.decode``
of the same token as context (``verify_signature`` is pyjwt's decode plus our checks around it).
Target (issue 10, context rather than a goal): at most 3x the floor."""

from __future__ import annotations

import base64
import time
import timeit
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entrypoint import verify_signature
from entrypoint.emulator.tokens import TokenSigner

from .common import Figure


def measure(repeat: int = 15, number: int = 2000) -> dict[str, Any]:
    signer = TokenSigner()
    nonce = "n" * 43
    now = int(time.time())
    claims = {"productCode": "prod-bench", "publicKeyVersion": 1, "nonce": nonce, "iat": now}
    token = signer.sign(claims, "prod-bench", 1)
    key: rsa.RSAPublicKey = signer.public_key("prod-bench", 1)
    header, payload, signature_b64 = token.split(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    message = f"{header}.{payload}".encode()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    sha256 = hashes.SHA256()

    def floor() -> None:
        key.verify(signature, message, pss, sha256)

    def ours() -> None:
        verify_signature(
            token,
            product_code="prod-bench",
            public_key_version=1,
            nonce=nonce,
            public_key=key,
            now=now,
        )

    import jwt

    def pyjwt() -> None:
        jwt.decode(token, key, algorithms=["PS256"])

    results: dict[str, list[float]] = {"floor": [], "verify_signature": [], "pyjwt_decode": []}
    for _ in range(repeat):  # interleaved, so load hits all three alike
        for name, function in (
            ("floor", floor),
            ("verify_signature", ours),
            ("pyjwt_decode", pyjwt),
        ):
            results[name].append(timeit.timeit(function, number=number) / number * 1e6)
    figures = {name: Figure.of(values) for name, values in results.items()}
    return {
        "figures_us": {name: f.as_dict() for name, f in figures.items()},
        "ratios": {
            "verify_signature": figures["verify_signature"].median / figures["floor"].median,
            "pyjwt_decode": figures["pyjwt_decode"].median / figures["floor"].median,
        },
        "targets": {"verify_signature": 3.0},
    }
