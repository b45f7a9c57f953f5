"""The pure verification core: every rejection reason, by name, and what a success guarantees."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from entrypoint import (
    ConfigurationError,
    EntrypointError,
    ExitCode,
    UntrustedKeyError,
    VerificationError,
    verify_signature,
)
from entrypoint.verify import MAX_TOKEN_LENGTH

from .support import JWT_IO_DEMO_PUBLIC_PEM, KEYS, b64url, claims, mint

PRODUCT = "prod-test"
NONCE = "n" * 43
NOW = 1_790_000_100
SIGNER = KEYS.get("verify-signer")
PUBLIC = SIGNER.public_key()


def verify(token: Any, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "product_code": PRODUCT,
        "public_key_version": 1,
        "nonce": NONCE,
        "public_key": PUBLIC,
        "now": NOW,
    }
    arguments.update(overrides)
    return verify_signature(token, **arguments)


def signed(payload: Any = None, header: Any = None) -> str:
    return mint(SIGNER, claims() if payload is None else payload, header)


def with_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


# -- success ------------------------------------------------------------------------------------


def test_valid_token_returns_the_verified_claims() -> None:
    result = verify(signed())
    assert result.product_code == PRODUCT
    assert result.public_key_version == 1
    assert result.nonce == NONCE
    assert result.issued_at == 1_790_000_000
    assert result.issued_at_datetime.isoformat() == "2026-09-21T14:13:20+00:00"
    assert result.claims["productCode"] == PRODUCT


def test_result_is_immutable() -> None:
    result = verify(signed())
    with pytest.raises(AttributeError):
        result.product_code = "other"
    with pytest.raises(TypeError):
        result.claims["nonce"] = "x"


def test_token_minted_by_pyjwt_verifies() -> None:
    """A second, independent JWS implementation agrees with ours."""
    token = jwt.encode(claims(), SIGNER, algorithm="PS256")
    assert verify(token).nonce == NONCE


def test_token_as_bytes_verifies() -> None:
    assert verify(signed().encode("ascii")).product_code == PRODUCT


def test_pascal_case_claims_verify() -> None:
    """AWS's prose spells three claims in PascalCase; ``iat`` is RFC 7519's registered name and
    pyjwt requires it (``options={"require": ["iat"]}``); an ``Iat`` beside it must agree."""
    payload = {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": NONCE, "iat": 1_790_000_000}
    assert verify(signed(payload)).issued_at == 1_790_000_000
    assert verify(signed({**payload, "Iat": 1_790_000_000})).issued_at == 1_790_000_000


def test_both_spellings_agreeing_verify() -> None:
    assert verify(signed(claims(ProductCode=PRODUCT, Nonce=NONCE))).nonce == NONCE


def test_unknown_claims_and_header_members_are_kept_but_not_trusted() -> None:
    header = {"alg": "PS256", "typ": "JWT", "kid": "http://attacker/key", "jku": "http://x"}
    result = verify(signed(claims(customerIdentifier="abc"), header))
    assert result.claims["customerIdentifier"] == "abc"


def test_iat_within_the_leeway_verifies() -> None:
    assert verify(signed(claims(iat=NOW + 299))).issued_at == NOW + 299


def test_header_without_typ_verifies() -> None:
    assert verify(signed(header={"alg": "PS256"})).product_code == PRODUCT


# -- rejections: (name, token factory, reason pattern) -------------------------------------------

OTHER = KEYS.get("verify-other")
SMALL = KEYS.get("verify-small", bits=1024)


_HEADER_JSON = "token is not a JWS compact serialization: Invalid header string: "


def _deep_json(depth: int) -> bytes:
    return b'{"alg":"PS256","x":' + b"[" * depth + b"]" * depth + b"}"


REJECTIONS: list[tuple[str, Callable[[], Any], str]] = [
    # step 2: type and size
    ("not a string", lambda: 12345, "token is int, not a string"),
    ("none", lambda: None, "token is NoneType, not a string"),
    ("empty", lambda: "", "token is empty"),
    ("non-ascii bytes", lambda: "é".encode() + b".a.b", "token is not ASCII"),
    ("too long", lambda: "a" * (MAX_TOKEN_LENGTH + 1), "over the 16384-character cap"),
    ("too long bytes", lambda: b"a" * (MAX_TOKEN_LENGTH + 1), "over the 16384-byte cap"),
    # step 2: shape, checked on the text before pyjwt reads it
    ("one segment", lambda: "abc", "token has 1 segments"),
    ("two segments", lambda: ".".join(signed().split(".")[:2]), "token has 2 segments"),
    ("four segments", lambda: signed() + ".abc", "token has 4 segments"),
    ("empty header", lambda: with_segment(signed(), 0, ""), "header segment is empty"),
    ("empty payload", lambda: with_segment(signed(), 1, ""), "payload segment is empty"),
    ("empty signature", lambda: signed().rsplit(".", 1)[0] + ".", "signature segment is empty"),
    ("padding", lambda: with_segment(signed(), 1, signed().split(".")[1] + "=="), "outside"),
    ("standard alphabet", lambda: with_segment(signed(), 2, "ab+/cd"), "outside"),
    ("whitespace", lambda: with_segment(signed(), 0, "eyJh bGc"), "outside"),
    ("impossible length", lambda: with_segment(signed(), 0, "abcde"), "impossible base64url"),
    ("stray bits", lambda: with_segment(signed(), 0, "QR"), "not canonical base64url"),
    # step 3: pyjwt's header parse (json.loads of the bytes: it guesses UTF-16 from \xff\xfe)
    ("header not utf-8", lambda: signed(header=b"\xff\xfe"), _HEADER_JSON + "Expecting value"),
    ("header not json", lambda: signed(header=b"{alg:PS256}"), _HEADER_JSON + "Expecting prop"),
    ("header json array", lambda: signed(header=b'["PS256"]'), _HEADER_JSON + "must be a json"),
    ("header json string", lambda: signed(header=b'"PS256"'), _HEADER_JSON + "must be a json"),
    (
        "header duplicate alg, none last",
        lambda: signed(header=b'{"alg":"PS256","alg":"none"}'),
        "header alg is 'none'",
    ),
    ("header deep nesting", lambda: signed(header=_deep_json(5000)), "maximum recursion depth"),
    ("kid not a string", lambda: signed(header={"alg": "PS256", "kid": 7}), "Key ID header"),
    ("alg missing", lambda: signed(header={"typ": "JWT"}), "header alg is None"),
    ("alg none", lambda: signed(header={"alg": "none"}), "header alg is 'none'"),
    ("alg None", lambda: signed(header={"alg": "None"}), "header alg is 'None'"),
    ("alg RS256", lambda: signed(header={"alg": "RS256"}), "header alg is 'RS256'"),
    ("alg HS256", lambda: signed(header={"alg": "HS256"}), "header alg is 'HS256'"),
    ("alg PS512", lambda: signed(header={"alg": "PS512"}), "header alg is 'PS512'"),
    ("alg lowercase", lambda: signed(header={"alg": "ps256"}), "header alg is 'ps256'"),
    ("alg list", lambda: signed(header={"alg": ["PS256"]}), r"header alg is \['PS256'\]"),
    (
        "crit",
        lambda: signed(header={"alg": "PS256", "crit": ["exp"]}),
        "token refused by pyjwt: Unsupported critical extension: exp",
    ),
    ("typ JOSE", lambda: signed(header={"alg": "PS256", "typ": "JOSE+JSON"}), "typ is 'JOSE"),
    ("typ number", lambda: signed(header={"alg": "PS256", "typ": 1}), "header typ is 1"),
    # steps 3-4: signature
    ("signature too short", lambda: with_segment(signed(), 2, b64url(b"x" * 255)), "is 255 bytes"),
    ("signature of another key", lambda: mint(OTHER, claims()), "does not verify with public key"),
    ("signature of 1024-bit key", lambda: mint(SMALL, claims()), "is 128 bytes; public key v1"),
    ("salt of 0 bytes", lambda: mint(SIGNER, claims(), salt_length=0), "does not verify"),
    (
        "payload swapped after signing",
        lambda: with_segment(signed(), 1, signed(claims(nonce="x")).split(".")[1]),
        "does not verify",
    ),
    (
        "header swapped after signing",
        lambda: with_segment(signed(), 0, b64url(b'{"alg":"PS256","typ":"jwt"}')),
        "does not verify",
    ),
    # step 3: the payload, parsed by pyjwt after the signature verified
    ("payload not utf-8", lambda: signed(b"\xc3\x28"), "Invalid payload string: 'utf-8' codec"),
    ("payload not json", lambda: signed(b"productCode=prod-test"), "Invalid payload string"),
    ("payload json array", lambda: signed(b"[1,2]"), "payload string: must be a json object"),
    ("payload json null", lambda: signed(b"null"), "payload string: must be a json object"),
    (
        "payload duplicate nonce, the other last",
        lambda: signed(json.dumps(claims())[:-1].encode() + b',"nonce":"evil"}'),
        "replayed or foreign answer",
    ),
    ("payload huge integer", lambda: signed(b'{"iat":' + b"9" * 5000 + b"}"), "4300 digits"),
    # step 6: claims
    (
        "productCode missing",
        lambda: signed(_without("productCode")),
        "claim productCode is missing",
    ),
    ("productCode number", lambda: signed(claims(product_code=7)), "productCode is int"),  # type: ignore[arg-type]
    ("productCode empty", lambda: signed(claims(product_code="")), "claim productCode is empty"),
    ("productCode other", lambda: signed(claims(product_code="prod-free")), "'prod-free', but"),
    (
        "ProductCode disagrees",
        lambda: signed(claims(ProductCode="prod-free")),
        "'prod-free', but the request was for prod-test",
    ),
    (
        "version missing",
        lambda: signed(_without("publicKeyVersion")),
        "publicKeyVersion is missing",
    ),
    ("version string", lambda: signed(claims(version="1")), "publicKeyVersion is str"),  # type: ignore[arg-type]
    ("version float", lambda: signed(claims(version=1.0)), "publicKeyVersion is float"),  # type: ignore[arg-type]
    ("version bool", lambda: signed(claims(version=True)), "publicKeyVersion is bool"),
    ("version other", lambda: signed(claims(version=2)), "publicKeyVersion is 2, but the request"),
    ("nonce missing", lambda: signed(_without("nonce")), "claim nonce is missing"),
    ("nonce list", lambda: signed(claims(nonce=[NONCE])), "claim nonce is list"),  # type: ignore[arg-type]
    ("nonce empty", lambda: signed(claims(nonce="")), "claim nonce is empty"),
    ("nonce replayed", lambda: signed(claims(nonce="m" * 43)), "replayed or foreign"),
    ("nonce case", lambda: signed(claims(nonce="N" * 43)), "replayed or foreign"),
    ("nonce suffix", lambda: signed(claims(nonce=NONCE + "x")), "replayed or foreign"),
    ("nonce prefix", lambda: signed(claims(nonce=NONCE[:-1])), "replayed or foreign"),
    ("Nonce disagrees", lambda: signed(claims(Nonce="m" * 43)), "replayed or foreign"),
    (
        "nonce lone surrogate",
        lambda: signed(json.dumps(claims(nonce="\ud800")).encode()),
        "replayed or foreign",
    ),
    (
        "productCode lone surrogate",
        lambda: signed(json.dumps(claims(product_code="\ud800")).encode()),
        r"claim productCode is '\\ud800', but",
    ),
    ("iat missing", lambda: signed(_without("iat")), "claim iat is missing"),
    ("iat null", lambda: signed(claims(iat=None)), "claim iat is missing"),  # type: ignore[arg-type]
    (
        "Iat without iat",
        lambda: signed({k: v for k, v in claims(Iat=1_790_000_000).items() if k != "iat"}),
        "claim iat is missing",
    ),
    ("iat float", lambda: signed(claims(iat=1.5e9)), "claim iat is float"),  # type: ignore[arg-type]
    ("iat string", lambda: signed(claims(iat="1790000000")), "claim iat is str"),  # type: ignore[arg-type]
    ("iat bool", lambda: signed(claims(iat=True)), "claim iat is bool"),
    ("iat negative", lambda: signed(claims(iat=-1)), "claim iat -1 is out of range"),
    ("iat year 10000", lambda: signed(claims(iat=253402300800)), "out of range"),
    ("iat future", lambda: signed(claims(iat=NOW + 3600)), "3600s in the future"),
    ("Iat disagrees", lambda: signed(claims(Iat=1)), "claims iat and Iat disagree"),
]


def _without(name: str) -> dict[str, Any]:
    body = claims()
    del body[name]
    return body


@pytest.mark.parametrize(
    ("make", "reason"), [(m, r) for _, m, r in REJECTIONS], ids=[n for n, _, _ in REJECTIONS]
)
def test_rejection(make: Callable[[], Any], reason: str) -> None:
    token = make()
    with pytest.raises(VerificationError, match=reason) as caught:
        verify(token)
    assert caught.value.exit_code == ExitCode.BAD_SIGNATURE
    assert "\n" not in caught.value.diagnosis()


def test_reason_strings_are_bounded_for_hostile_values() -> None:
    with pytest.raises(VerificationError) as caught:
        verify(signed(claims(product_code="p" * 10_000)))
    assert len(caught.value.diagnosis()) < 400


def test_control_characters_from_the_token_do_not_reach_the_log_line() -> None:
    with pytest.raises(VerificationError) as caught:
        verify(signed(claims(product_code="evil\nmarketplace-entrypoint: info: verified")))
    assert "\n" not in caught.value.diagnosis()
    assert "\\n" in caught.value.diagnosis()


# -- keys and expectations ------------------------------------------------------------------------


def test_private_key_is_refused() -> None:
    with pytest.raises(UntrustedKeyError, match="is an RSA private key"):
        verify(signed(), public_key=SIGNER)


def test_pem_string_is_refused() -> None:
    pem = PUBLIC.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UntrustedKeyError, match="is bytes, not an RSA public key"):
        verify(signed(), public_key=pem)


def test_ec_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(UntrustedKeyError, match="not an RSA public key"):
        verify(signed(), public_key=key)


def test_1024_bit_key_is_refused() -> None:
    with pytest.raises(UntrustedKeyError, match="1024-bit RSA key, under the 2048-bit minimum"):
        verify(mint(SMALL, claims()), public_key=SMALL.public_key())


def test_jwt_io_demo_key_is_refused_by_name() -> None:
    """The denylist is checked before the size, so the reason names the compromised key."""
    demo = serialization.load_pem_public_key(JWT_IO_DEMO_PUBLIC_PEM)
    with pytest.raises(UntrustedKeyError, match=r"jwt\.io RS256 demo key"):
        verify(signed(), public_key=demo)


# Keys pyjwt would take as something else (an HMAC secret, PEM text to parse): refused before
# pyjwt sees them. The token is garbage, so a refusal naming the key proves the order.
NOT_KEY_OBJECTS: list[tuple[str, object, str]] = [
    (
        "PEM bytes",
        PUBLIC.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "is bytes, not an RSA public key",
    ),
    (
        "PEM text",
        PUBLIC.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "is str, not an RSA public key",
    ),
    ("HMAC secret bytes", b"a-shared-secret-of-32-bytes-long", "is bytes, not an RSA public key"),
    ("HMAC secret text", "secret", "is str, not an RSA public key"),
    ("bytearray", bytearray(b"secret"), "is bytearray, not an RSA public key"),
    ("JWK dict", jwt.algorithms.RSAAlgorithm.to_jwk(PUBLIC, as_dict=True), "is dict, not an RSA"),
    ("PyJWK", jwt.PyJWK(jwt.algorithms.RSAAlgorithm.to_jwk(PUBLIC, as_dict=True)), "is PyJWK"),
    ("None", None, "is NoneType, not an RSA public key"),
    ("private key", SIGNER, "is an RSA private key"),
]


@pytest.mark.parametrize(
    ("key", "reason"),
    [(k, r) for _, k, r in NOT_KEY_OBJECTS],
    ids=[n for n, _, _ in NOT_KEY_OBJECTS],
)
def test_anything_but_an_rsa_public_key_object_is_refused_before_pyjwt(
    key: object, reason: str
) -> None:
    with pytest.raises(UntrustedKeyError, match=reason) as caught:
        verify("not.a.token", public_key=key)
    assert caught.value.exit_code == ExitCode.CONFIGURATION


@pytest.mark.parametrize("bits", [1024, 2047, 0, -1])
def test_min_key_bits_cannot_go_under_pyjwts_minimum(bits: int) -> None:
    """pyjwt warns on stderr (or refuses) under 2048 bits: a lower minimum could not take effect
    without breaking the pure contract, so it is the caller's error."""
    with pytest.raises(
        ConfigurationError, match=f"min_key_bits must be an integer >= 2048.*{bits}"
    ):
        verify(signed(), min_key_bits=bits)


def test_min_key_bits_can_raise_the_minimum() -> None:
    with pytest.raises(UntrustedKeyError, match="2048-bit RSA key, under the 3072-bit minimum"):
        verify(signed(), min_key_bits=3072)
    assert verify(signed(), min_key_bits=2048).nonce == NONCE


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"product_code": ""}, "product_code must be a non-empty string"),
        ({"product_code": None}, "product_code must be a non-empty string"),
        ({"public_key_version": 0}, "public_key_version must be an integer >= 1"),
        ({"public_key_version": "1"}, "public_key_version must be an integer >= 1"),
        ({"public_key_version": True}, "public_key_version must be an integer >= 1"),
        ({"nonce": ""}, "nonce must be a non-empty string"),
    ],
)
def test_bad_expectations_are_configuration_errors(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        verify(signed(), **overrides)


class _ExplodingKey:
    """A key object whose verify raises something no parser should: proves the catch-all."""

    key_size = 2048

    def verify(self, *_: object) -> None:
        raise TypeError("unexpected")


rsa.RSAPublicKey.register(_ExplodingKey)  # a virtual subclass passes the isinstance check


def test_unexpected_exceptions_become_verification_errors() -> None:
    """pyjwt's RSAPSSAlgorithm.verify catches only InvalidSignature: the key's TypeError goes
    through pyjwt and is wrapped, with its type and message."""
    with pytest.raises(VerificationError, match=r"pyjwt raised TypeError: unexpected"):
        verify(signed(), public_key=_ExplodingKey())


def test_every_failure_is_an_entrypoint_error() -> None:
    for _, make, _ in REJECTIONS:
        with pytest.raises(EntrypointError):
            verify(make())


def test_pss_salt_must_be_the_hash_length() -> None:
    """RFC 7518 §3.5: PS256's salt is 32 bytes, the SHA-256 output; a 64-byte salt must not do."""
    with pytest.raises(VerificationError, match="does not verify"):
        verify(mint(SIGNER, claims(), salt_length=64))


# -- every call checks its key (no memo) --------------------------------------------------------


def test_a_key_that_verified_once_does_not_vouch_for_another() -> None:
    verify(signed())
    with pytest.raises(UntrustedKeyError, match="1024-bit RSA key"):
        verify(mint(SMALL, claims()), public_key=SMALL.public_key())
    with pytest.raises(UntrustedKeyError, match="1024-bit RSA key"):
        verify(mint(SMALL, claims()), public_key=SMALL.public_key(), min_key_bits=2048)
    verify(signed())


# -- the caller's clock (issue 11): NaN compares false, so it would switch the iat check off -------

FUTURE = signed(claims(iat=NOW + 10 * 365 * 86400))


@pytest.mark.parametrize(
    "now",
    [float("nan"), float("inf"), float("-inf"), -1, 253402300800, 1e300, True, "1790000100"],
    ids=repr,
)
def test_now_must_be_a_finite_time_in_range(now: object) -> None:
    with pytest.raises(ConfigurationError, match=r"now must be seconds since the epoch from 0 to "):
        verify(FUTURE, now=now)
    with pytest.raises(ConfigurationError, match="now must be"):
        verify(signed(), now=now)


@pytest.mark.parametrize(
    "leeway", [float("nan"), float("inf"), -1, -0.5, 86_401, 1e300, True, "300", None], ids=repr
)
def test_leeway_must_be_finite_non_negative_and_at_most_a_day(leeway: object) -> None:
    with pytest.raises(ConfigurationError, match=r"leeway must be a number of seconds from 0 to "):
        verify(FUTURE, leeway=leeway)


def test_clock_values_in_range_still_check_iat() -> None:
    assert verify(signed(claims(iat=NOW)), leeway=0).issued_at == NOW
    with pytest.raises(VerificationError, match="1s in the future"):
        verify(signed(claims(iat=NOW + 1)), leeway=0)
    assert verify(signed(claims(iat=NOW + 86_400)), leeway=86_400).issued_at == NOW + 86_400
    assert verify(signed(claims(iat=0)), now=0.0).issued_at == 0
    with pytest.raises(VerificationError, match="in the future"):
        verify(FUTURE, now=float(NOW))


# -- pyjwt's own claim checks are off: they read the wall clock, not `now` -------------------------


def test_pyjwts_time_checks_do_not_replace_ours() -> None:
    """An ``exp`` or ``nbf`` is not part of AWS's Signature (no expiry is documented; the nonce
    proves freshness): ignored as before, not checked against the wall clock by pyjwt."""
    assert verify(signed(claims(exp=1))).nonce == NONCE
    assert verify(signed(claims(nbf=NOW + 10**9))).nonce == NONCE
    # pyjwt's iat check would take int("1790000000") and int(1.5e9); ours refuses both.
    with pytest.raises(VerificationError, match="claim iat is str"):
        verify(signed(claims(iat="1790000000")))  # type: ignore[arg-type]


def test_other_registered_claims_stay_unchecked_as_before() -> None:
    body = claims(aud="someone-else", iss=7, sub=["x"], jti={})
    assert verify(signed(body)).claims["aud"] == "someone-else"


# -- what pyjwt's parser accepts that ours did not: only the signing key can produce it ----------

HEADER_LAXITIES = {
    "duplicate alg, PS256 last": b'{"alg":"none","alg":"PS256"}',
    "NaN in the header": b'{"alg":"PS256","x":NaN}',
    "UTF-16 header": '{"alg":"PS256"}'.encode("utf-16"),
    "UTF-8 BOM": b'\xef\xbb\xbf{"alg":"PS256"}',
}


@pytest.mark.parametrize("header", HEADER_LAXITIES.values(), ids=HEADER_LAXITIES.keys())
def test_header_json_is_pyjwts_and_covered_by_the_signature(header: bytes) -> None:
    """Removed on purpose (CHANGELOG): the header is parsed once, by pyjwt, which decides ``alg``
    from the same dict it verifies with, so there is no second reading to disagree; and the
    header is signed, so only AWS's signing key can produce these. Signed by anyone else, each is
    refused."""
    assert verify(signed(header=header)).nonce == NONCE
    with pytest.raises(VerificationError, match="does not verify"):
        verify(mint(OTHER, claims(), header))


PAYLOAD_LAXITIES = {
    "duplicate nonce, genuine last": b'{"nonce":"evil",' + json.dumps(claims())[1:].encode(),
    "NaN beside the claims": json.dumps(claims(x=float("nan"))).encode(),
    "-Infinity beside the claims": json.dumps(claims(x=float("-inf"))).encode(),
    "UTF-16 payload": json.dumps(claims()).encode("utf-16"),
}


@pytest.mark.parametrize("payload", PAYLOAD_LAXITIES.values(), ids=PAYLOAD_LAXITIES.keys())
def test_payload_json_is_pyjwts_and_covered_by_the_signature(payload: bytes) -> None:
    """Removed on purpose (CHANGELOG): the payload is parsed by pyjwt alone (issue 10: no JSON
    parsing of the token of ours), whose ``json.loads`` keeps the last of duplicate names and
    takes NaN and UTF-16. The claims we check are the dict we return, one reading; and only the
    signing key can produce such a payload. Signed by anyone else, each is refused."""
    verified = verify(signed(payload))
    assert verified.nonce == NONCE
    assert verified.claims["nonce"] == NONCE
    with pytest.raises(VerificationError, match="does not verify"):
        verify(mint(OTHER, payload))


def test_crit_b64_true_is_understood_by_pyjwt() -> None:
    """pyjwt (>= 2.12) refuses unknown ``crit`` entries and understands ``b64`` (RFC 7797);
    ``b64: true`` is the ordinary encoding, so the token is accepted (removed on purpose: we
    refused any ``crit`` before)."""
    header = {"alg": "PS256", "crit": ["b64"], "b64": True}
    assert verify(signed(header=header)).nonce == NONCE
    with pytest.raises(VerificationError, match="Payload segment must be empty when 'b64'"):
        verify(signed(header={**header, "b64": False}))
