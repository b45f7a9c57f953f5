"""Known answers from outside: Project Wycheproof's RSASSA-PSS vectors with PS256's parameters,
run through the function that decides every signature the package checks.

`verify_signature` step 5 calls `entrypoint.verify.ps256_verifies`; a Wycheproof message is not a
JWS signing input, so the vectors go to that function directly, with the key loaded by the same
loader the keys directory uses. The last tests tie the two together: for a real token and for
mutations of its signature, `verify_signature` accepts exactly when `ps256_verifies` does.
Provenance, licence and checks: tests/vectors/README.md.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from entrypoint import VerificationError, load_public_key_pem, verify_signature
from entrypoint.verify import ps256_verifies

from .support import KEYS, b64url, claims, mint

VECTORS = Path(__file__).with_name("vectors") / "wycheproof"
PSS_FILE = VECTORS / "rsa_pss_2048_sha256_mgf1_32_test.json"
PSS_SHA256 = "235015ab9fd4b9268dd060ee0612175071174de2033787aa8cb8b66d32f7cc76"


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PSS_FILE.read_text(encoding="utf-8"))
    return loaded


def cases() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(group, test) for group in document()["testGroups"] for test in group["tests"]]


def case_id(case: tuple[dict[str, Any], dict[str, Any]]) -> str:
    test = case[1]
    return f"tc{test['tcId']}-{test['result']}-{test['comment'].replace(' ', '_')}"


def test_the_vector_file_is_the_one_documented() -> None:
    assert hashlib.sha256(PSS_FILE.read_bytes()).hexdigest() == PSS_SHA256
    doc = document()
    assert doc["algorithm"] == "RSASSA-PSS"
    tests = [test for _, test in cases()]
    assert doc["numberOfTests"] == len(tests) == 108
    assert [t["tcId"] for t in tests] == list(range(1, 109))
    results = [t["result"] for t in tests]
    assert (results.count("valid"), results.count("invalid")) == (63, 45)


def test_the_vectors_have_exactly_ps256s_parameters() -> None:
    for group in document()["testGroups"]:
        assert group["type"] == "RsassaPssVerify"
        assert (group["keySize"], group["sha"], group["mgf"], group["mgfSha"], group["sLen"]) == (
            2048,
            "SHA-256",
            "MGF1",
            "SHA-256",
            32,
        )


@cache
def group_key(pem: str) -> rsa.RSAPublicKey:
    """The vector's key, through the loader the keys directory uses (all its checks apply)."""
    return load_public_key_pem(pem.encode("ascii"), where="Wycheproof key")


def test_the_vector_key_is_the_same_in_every_encoding() -> None:
    for group in document()["testGroups"]:
        key = group_key(group["publicKeyPem"])
        der = serialization.load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
        assert isinstance(der, rsa.RSAPublicKey)
        numbers = key.public_numbers()
        assert der.public_numbers() == numbers
        assert numbers.n == int(group["publicKey"]["modulus"], 16)
        assert numbers.e == int(group["publicKey"]["publicExponent"], 16)


@pytest.mark.parametrize(("group", "test"), cases(), ids=[case_id(c) for c in cases()])
def test_wycheproof_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    key = group_key(group["publicKeyPem"])
    verdict = ps256_verifies(key, bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
    # Wycheproof's "acceptable" does not occur in this file; a strict verifier says no to it.
    assert verdict is (test["result"] == "valid"), test["comment"]


# -- the helper is the verifier's own step 5 -------------------------------------------------------

SIGNER = KEYS.get("vectors-signer")
NONCE = "n" * 43
TOKEN = mint(SIGNER, claims())


def verify(token: str) -> object:
    return verify_signature(
        token,
        product_code="prod-test",
        public_key_version=1,
        nonce=NONCE,
        public_key=SIGNER.public_key(),
        now=1_790_000_100,
    )


def test_verify_signature_accepts_what_ps256_verifies_accepts() -> None:
    head, body, sig = TOKEN.split(".")
    assert ps256_verifies(SIGNER.public_key(), f"{head}.{body}".encode(), _raw(sig))
    assert verify(TOKEN) is not None


@given(index=st.integers(0, 255), flip=st.integers(1, 255))
def test_verify_signature_refuses_what_ps256_verifies_refuses(index: int, flip: int) -> None:
    head, body, sig = TOKEN.split(".")
    mutated = bytearray(_raw(sig))
    mutated[index] ^= flip
    assert not ps256_verifies(SIGNER.public_key(), f"{head}.{body}".encode(), bytes(mutated))
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify(f"{head}.{body}.{b64url(bytes(mutated))}")


def _raw(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
