"""Known answers from outside: Project Wycheproof's RSASSA-PSS vectors with PS256's parameters,
run through the code that decides every signature the package checks.

`verify_signature` has pyjwt verify the signature with its PS256 algorithm object
(``RSAPSSAlgorithm(SHA256)``: salt of the digest's 32 bytes) after our modulus-length check; a
Wycheproof message is not a JWS signing input, so the vectors go to `ps256_verifies`, which is that
length check and that pyjwt algorithm object, with the key loaded by the same loader the keys
directory uses. The last tests tie the two together: for a real token and for mutations of its
signature, `verify_signature` accepts exactly when `ps256_verifies` does.
Provenance, licence and checks: tests/vectors/README.md.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from entrypoint import VerificationError, load_public_key_pem, verify_signature
from entrypoint import verify as verify_module
from entrypoint.verify import ps256_verifies

from .support import KEYS, b64url, claims, mint, pss_sign

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


# -- the helper is the verifier's own signature check ----------------------------------------------

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


def test_the_vectors_run_through_the_algorithm_object_pyjwt_verifies_with() -> None:
    """The object `ps256_verifies` calls is the class and parameters pyjwt's own decode looks up
    for PS256 (each PyJWS builds its own instance from the same defaults)."""
    used = verify_module._PS256
    decoder_own = jwt.PyJWS(algorithms=["PS256"]).get_algorithm_by_name("PS256")
    assert type(used) is type(decoder_own) is jwt.algorithms.RSAPSSAlgorithm
    assert used.hash_alg is decoder_own.hash_alg is hashes.SHA256


@pytest.mark.parametrize(("salt", "accepted"), [(32, True), (0, False), (20, False), (64, False)])
def test_pyjwts_pss_salt_is_the_digest_length(salt: int, accepted: bool) -> None:
    """RFC 7518 §3.5: PS256's salt is 32 bytes; pyjwt passes ``salt_length=digest_size``."""
    message = b"header.payload"
    signature = pss_sign(SIGNER, message, salt)
    assert verify_module._PS256.verify(message, SIGNER.public_key(), signature) is accepted
    assert ps256_verifies(SIGNER.public_key(), message, signature) is accepted


def test_the_modulus_length_check_is_ours_and_needed() -> None:
    """cryptography (so pyjwt's algorithm) accepts a genuine signature whose leading zero byte was
    stripped: the same integer, another spelling. RFC 8017 §8.1.2 step 1 requires exactly the
    modulus length, which `ps256_verifies` and `verify_signature` check before pyjwt decides."""
    public = SIGNER.public_key()
    for attempt in range(5000):  # PSS is randomized: a leading zero byte 1 time in 256
        message = f"m{attempt}".encode()
        signature = pss_sign(SIGNER, message)
        if signature[0] == 0:
            break
    else:
        raise AssertionError("no signature with a leading zero byte in 5000 tries")
    assert verify_module._PS256.verify(message, public, signature[1:])
    assert not ps256_verifies(public, message, signature[1:])
    assert ps256_verifies(public, message, signature)
