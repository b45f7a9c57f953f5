"""Property-based fuzzing of everything that parses untrusted input.

For any input the only outcomes are a verified result or our own error (an
`entrypoint.EntrypointError` subclass with its exit code): no ``TypeError``, ``RecursionError``,
``UnicodeError`` or ``ValueError`` escapes raw from pyjwt or from our checks around it (sigstore
4.5.0's lesson; pyjwt's hostile-token history). And whatever verifies says exactly what the
request asked for.

Example counts come from the hypothesis profile (tests/conftest.py): 2,000 per property in
``make test`` ("ci"); ``HYPOTHESIS_PROFILE=fuzz`` runs 100,000.
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import assume, example, given, reject
from hypothesis import strategies as st

from entrypoint import (
    ConfigurationError,
    EntrypointError,
    UntrustedKeyError,
    VerificationError,
    VerifiedEntitlement,
    load_public_key_pem,
    load_trust_store,
    verify_signature,
)
from entrypoint.answers import Transient, answer_from_response, classify_client_error

from .support import KEYS, claims, mint

PRODUCT = "prod-test"
NONCE = "fuzz-nonce-0123456789abcdefghijklmnopqrstuv"
NOW = 1_790_000_100
SIGNER = KEYS.get("fuzz-signer")
PUBLIC = SIGNER.public_key()
GENUINE = mint(SIGNER, claims(PRODUCT, 1, NONCE, NOW - 10))
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def outcome(token: object, **overrides: Any) -> VerifiedEntitlement | VerificationError:
    """Verify; any exception other than our VerificationError fails the property."""
    arguments: dict[str, Any] = {
        "product_code": PRODUCT,
        "public_key_version": 1,
        "nonce": NONCE,
        "public_key": PUBLIC,
        "now": NOW,
    }
    arguments.update(overrides)
    refused: VerificationError | None = None
    try:
        result = verify_signature(token, **arguments)  # type: ignore[arg-type]
    except VerificationError as error:
        refused = error
    if refused is not None:
        assert "\n" not in refused.diagnosis()
        return refused
    # Whatever verifies is exactly what was asked for.
    assert result.product_code == arguments["product_code"]
    assert result.public_key_version == arguments["public_key_version"]
    assert result.nonce == arguments["nonce"]
    assert result.issued_at <= arguments["now"] + 300
    for name, expected in (("productCode", result.product_code), ("nonce", result.nonce)):
        for spelling in (name, name[0].upper() + name[1:]):
            if spelling in result.claims:
                assert result.claims[spelling] == expected
    return result


# -- the verify function ------------------------------------------------------------------------


@given(st.text(max_size=600) | st.binary(max_size=600))
@example("..")
@example("a.b.c")
@example(GENUINE + "\x00")
def test_arbitrary_input_is_refused_cleanly(token: str | bytes) -> None:
    assert isinstance(outcome(token), VerificationError)


@given(st.lists(st.text(alphabet=B64URL + "=.+/ ", max_size=400), min_size=0, max_size=5))
def test_arbitrary_segments_are_refused_cleanly(segments: list[str]) -> None:
    assert isinstance(outcome(".".join(segments)), VerificationError)


@given(
    header=st.dictionaries(st.text(max_size=8), json_values, max_size=5)
    | st.binary(max_size=64)
    | json_values,
    payload=st.dictionaries(st.text(max_size=16), json_values, max_size=6)
    | st.binary(max_size=128)
    | json_values,
)
def test_anything_signed_by_the_trusted_key_either_verifies_or_is_refused(
    header: Any, payload: Any
) -> None:
    """The signature is real, so every check after it is exercised on hostile JSON."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    outcome(mint(SIGNER, body, head))


@given(
    extra=st.dictionaries(
        st.sampled_from(
            [
                "productCode",
                "ProductCode",
                "publicKeyVersion",
                "PublicKeyVersion",
                "nonce",
                "Nonce",
                "iat",
                "Iat",
                "exp",
                "kid",
            ]
        ),
        json_values,
        max_size=4,
    ),
    alg=st.sampled_from(["PS256", "ps256", "RS256", "none", "HS256"]) | st.text(max_size=6),
)
def test_claims_near_the_real_ones_verify_only_when_they_match(
    extra: dict[str, Any], alg: str
) -> None:
    body = claims(PRODUCT, 1, NONCE, NOW - 10)
    body.update(extra)
    result = outcome(mint(SIGNER, body, {"alg": alg, "typ": "JWT"}))
    if isinstance(result, VerifiedEntitlement):
        assert alg == "PS256"


@given(
    product=st.from_regex(r"[-a-zA-Z0-9/=:_.@]{1,255}", fullmatch=True),
    version=st.integers(1, 2**31),
    nonce=st.text(min_size=1, max_size=255),
    iat=st.integers(0, NOW + 300),
)
def test_a_genuine_answer_for_any_request_verifies_to_exactly_that_request(
    product: str, version: int, nonce: str, iat: int
) -> None:
    token = mint(SIGNER, claims(product, version, nonce, iat))
    result = outcome(token, product_code=product, public_key_version=version, nonce=nonce)
    assert isinstance(result, VerifiedEntitlement)
    assert result.issued_at == iat


@given(
    position=st.integers(0, len(GENUINE) - 1),
    change=st.sampled_from(["replace", "insert", "delete"]),
    char=st.sampled_from(B64URL + ".=+/ \n\x00é"),
)
def test_every_one_character_mutation_of_a_genuine_token_is_refused(
    position: int, change: str, char: str
) -> None:
    """One payload has exactly one spelling (canonical base64url, no padding): any edit of a
    genuine token's text is a different token, and none of them verifies."""
    if change == "replace":
        mutated = GENUINE[:position] + char + GENUINE[position + 1 :]
    elif change == "insert":
        mutated = GENUINE[:position] + char + GENUINE[position:]
    else:
        mutated = GENUINE[:position] + GENUINE[position + 1 :]
    assume(mutated != GENUINE)
    assert isinstance(outcome(mutated), VerificationError)


@given(
    product_code=st.none() | st.text(max_size=5) | st.integers(),
    public_key_version=st.none() | st.integers(-2, 2) | st.booleans() | st.text(max_size=3),
    nonce=st.none() | st.text(max_size=5) | st.binary(max_size=5),
    key=st.sampled_from(["rsa", "none", "bytes", "private", "small"]),
)
def test_bad_expectations_and_keys_are_configuration_errors(
    product_code: object, public_key_version: object, nonce: object, key: str
) -> None:
    public_key: object = {
        "rsa": PUBLIC,
        "none": None,
        "bytes": b"-----BEGIN PUBLIC KEY-----",
        "private": SIGNER,
        "small": KEYS.get("fuzz-small", bits=1024).public_key(),
    }[key]
    try:
        verify_signature(
            GENUINE,
            product_code=product_code,  # type: ignore[arg-type]
            public_key_version=public_key_version,  # type: ignore[arg-type]
            nonce=nonce,  # type: ignore[arg-type]
            public_key=public_key,
            now=NOW,
        )
    except (ConfigurationError, VerificationError):
        return


@given(
    now=st.none() | st.floats() | st.integers(-(2**70), 2**70),
    leeway=st.floats() | st.integers(-(2**40), 2**40),
    iat=st.integers(0, 253402300799),
)
def test_any_clock_is_refused_or_bounds_iat(now: float | None, leeway: float, iat: int) -> None:
    """The caller's ``now`` and ``leeway`` (issue 11): NaN, infinities, negatives and values
    past year 9999 are configuration errors; any other pair still bounds ``iat``."""
    token = mint(SIGNER, claims(PRODUCT, 1, NONCE, iat))
    refused: ConfigurationError | VerificationError | None = None
    try:
        result = verify_signature(
            token,
            product_code=PRODUCT,
            public_key_version=1,
            nonce=NONCE,
            public_key=PUBLIC,
            now=now,
            leeway=leeway,
        )
    except (ConfigurationError, VerificationError) as error:
        refused = error
    if isinstance(refused, ConfigurationError):
        assert "now must be" in refused.reason or "leeway must be" in refused.reason
    elif isinstance(refused, VerificationError):
        assert "in the future" in refused.reason
        assert now is None or iat > now + leeway
    else:
        assert 0 <= leeway <= 86_400
        assert now is None or result.issued_at <= now + leeway


# -- the key loader -------------------------------------------------------------------------------

GOOD_PEM = PUBLIC.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
GOOD_DER = PUBLIC.public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)


def load(data: bytes) -> None:
    reason: str | None = None
    try:
        key = load_public_key_pem(data, where="fuzzed key")
    except UntrustedKeyError as error:
        reason = error.reason
    if reason is not None:
        assert reason.startswith("fuzzed key ")
        return
    assert key.key_size >= 2048
    assert key.public_numbers().n % 2 == 1


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_as_a_key_file(data: bytes) -> None:
    load(data)


@given(
    label=st.sampled_from(["PUBLIC KEY", "RSA PUBLIC KEY", "PRIVATE KEY", "CERTIFICATE", "X"]),
    der=st.binary(max_size=600),
)
def test_arbitrary_der_in_pem_armour(label: str, der: bytes) -> None:
    body = base64.encodebytes(der).decode()
    load(f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode())


@given(position=st.integers(0, len(GOOD_DER) - 1), value=st.integers(0, 255))
def test_one_byte_mutations_of_a_real_key(position: int, value: int) -> None:
    """Corrupt one DER byte of a real key (lengths, tags, modulus, exponent): refused or, if it
    still parses, still checked."""
    der = bytearray(GOOD_DER)
    der[position] = value
    body = base64.encodebytes(bytes(der)).decode()
    load(f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n".encode())


@given(position=st.integers(0, len(GOOD_PEM) - 1), char=st.binary(min_size=1, max_size=3))
def test_text_mutations_of_a_real_pem(position: int, char: bytes) -> None:
    load(GOOD_PEM[:position] + char + GOOD_PEM[position + 1 :])


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"),
    min_size=1,
    max_size=20,
).filter(lambda n: n not in (".", ".."))


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@given(
    tree=st.dictionaries(
        names,
        st.dictionaries(names, st.sampled_from([b"", b"junk", GOOD_PEM, GOOD_PEM * 2]), max_size=3)
        | st.sampled_from([b"", GOOD_PEM]),
        max_size=3,
    )
)
def test_arbitrary_keys_directories(tree: dict[str, dict[str, bytes] | bytes]) -> None:
    """Any tree of names and contents: a trust store, or a configuration error naming why."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in tree.items():
            try:
                if isinstance(content, bytes):
                    (root / name).write_bytes(content)
                    continue
                (root / name).mkdir()
                for file, data in content.items():
                    (root / name / file).write_bytes(data)
            except OSError:
                reject()  # a name this filesystem refuses (too long in bytes)
        try:
            store = load_trust_store(root)
        except ConfigurationError:
            return
        for product in store.products.values():
            assert product.keys
            for key in product.keys.values():
                assert key.key_size >= 2048


# -- the service's answer -------------------------------------------------------------------------


@given(st.dictionaries(st.text(max_size=30), json_values, max_size=5))
def test_arbitrary_parsed_answers(response: dict[str, Any]) -> None:
    try:
        answer = answer_from_response(response)
    except VerificationError:
        return
    assert isinstance(answer.signature, str)
    assert answer.signature


@given(code=st.text(max_size=60), status=st.integers(0, 999), message=st.text(max_size=300))
def test_arbitrary_error_answers_are_classified(code: str, status: int, message: str) -> None:
    """Every error answer maps to retry or a documented final exit; only throttling, 429 and
    server faults are retried (AWS: terminate on any other exception at start-up)."""
    outcome = classify_client_error(code, status, message)
    assert isinstance(outcome, Transient | EntrypointError)
    if isinstance(outcome, EntrypointError):
        assert "\n" not in outcome.diagnosis()
        assert status < 500
        assert status != 429
    elif status < 500 and status != 429:
        assert (
            "Throttl" in code
            or "Unavailable" in code
            or "Timeout" in code
            or "Limit" in code
            or "Internal" in code
        )
