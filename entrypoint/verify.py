"""Verification of the RegisterUsage ``Signature``: the pure core of the product.

`verify_signature` takes the token, the values the request carried, the public key object and
``now``, and touches nothing else: no clock unless ``now`` is omitted, no files, no network, no
logging. It returns a `VerifiedEntitlement` or raises `VerificationError` with the reason; nothing
a parser raises escapes raw (sigstore 4.5.0's lesson, and pyjwt's hostile-token history).

Why not ``jwt.decode``: the Signature is one fixed shape (JWS compact, PS256, four claims), and
the general-purpose path is both looser and slower than what this needs. pyjwt's base64url
decoding drops characters outside the alphabet, its JSON accepts duplicate member names, and its
decode costs 2.5x the RSA-PSS verification itself. So the algorithm is not looked up at all:
there is one code path, RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 7518 §3.5),
and the header's ``alg`` must name exactly that. pyjwt signs the emulator's tokens and, in the
tests, checks that both implementations agree.

Steps, in order (each failure names its step's reason):

1. the key is an RSA public key of at least 2048 bits and not denylisted (`check_public_key`);
2. the token is a string of at most `MAX_TOKEN_LENGTH` characters;
3. it has exactly three non-empty segments of canonical, unpadded base64url (RFC 7515 §2, §7.1);
4. the header is a UTF-8 JSON object without duplicate names, ``alg`` is exactly ``PS256``,
   ``typ`` (if present) is ``JWT``, and there is no ``crit`` (RFC 7515 §4.1.11: we understand no
   extension). ``kid``, ``jku``, ``x5u``, ``jwk``, ``x5c`` are ignored, never followed (RFC 8725
   §3.10): the key is chosen by the version the request named;
5. the signature is the key's modulus length and verifies over ``header.payload``;
6. only then is the payload parsed: a UTF-8 JSON object without duplicate names;
7. claims (camelCase as AWS's verifiers read them, PascalCase accepted too; every spelling present
   is checked): ``productCode`` equals the request's, ``publicKeyVersion`` is the integer the
   request named, ``nonce`` equals the request's (constant-time), ``iat`` is an integer
   NumericDate not more than ``leeway`` seconds in the future.
"""

from __future__ import annotations

import binascii
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .errors import ConfigurationError, VerificationError, one_line
from .keys import MIN_KEY_BITS, check_public_key

__all__ = [
    "DEFAULT_IAT_LEEWAY",
    "MAX_TOKEN_LENGTH",
    "VerifiedEntitlement",
    "ps256_verifies",
    "verify_signature",
]

# A real Signature is about 550 characters with a 2048-bit key and 255-character product code and
# nonce would bring it near 1,400; 16 KiB leaves room for 16384-bit keys and refuses floods.
MAX_TOKEN_LENGTH = 16 * 1024
# SigV4 refuses requests whose clock is more than 5 minutes off AWS's (SignatureDoesNotMatch /
# "Signature expired"), so any clock that could make the call at all passes this check.
DEFAULT_IAT_LEEWAY = 300.0
ALGORITHM = "PS256"

_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_VALUES = {c: i for i, c in enumerate(_B64URL_ALPHABET)}
# base64url -> the standard alphabet, for binascii (which then decodes in strict mode).
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SHA256 = hashes.SHA256()
# Step 1 and step 4 are pure functions of their input, and a process verifies with one key and
# sees one header spelling: both are remembered. The key is held (not its id(), which a freed
# object's successor may reuse); only headers that passed every check are kept, at most 16.
_last_checked_key: tuple[object, int] | None = None
_VALID_HEADERS: set[bytes] = set()
_MAX_REMEMBERED_HEADERS = 16
# RFC 7519 NumericDate upper bound we accept at all: year 9999, so datetime can render it.
_MAX_NUMERIC_DATE = 253402300799


@dataclass(frozen=True, slots=True)
class VerifiedEntitlement:
    """Claims of a RegisterUsage Signature that verified. Immutable.

    ``claims`` holds every claim of the payload, read-only, for callers that want more than the
    four that were checked.
    """

    product_code: str
    public_key_version: int
    nonce: str
    issued_at: int
    claims: Mapping[str, Any]

    @property
    def issued_at_datetime(self) -> datetime:
        """``iat`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.issued_at, tz=UTC)


def _fail(reason: str) -> NoReturn:
    raise VerificationError(reason, remedy="the workload was not started")


def _show(value: object) -> str:
    """A short, printable rendering of an untrusted value for a reason string."""
    return one_line(repr(value), 60)


def _b64url_decode(segment: bytes, name: str) -> bytes:
    """Strict base64url (RFC 7515 §2): alphabet only, no padding, canonical trailing bits."""
    if not segment:
        _fail(f"{name} segment is empty")
    # Deleting the alphabet leaves exactly the characters that are not base64url ('=' padding,
    # '+', '/', whitespace ...): one pass in C.
    if segment.translate(None, _B64URL_ALPHABET):
        _fail(f"{name} segment has characters outside unpadded base64url")
    tail = len(segment) % 4
    if tail == 1:
        _fail(f"{name} segment has an impossible base64url length ({len(segment)})")
    # Non-canonical encodings (set bits in the unused tail of the last character) decode to the
    # same bytes as the canonical one; refuse them so that one payload has exactly one spelling.
    if tail and _B64URL_VALUES.get(segment[-1], 0) & (0x0F if tail == 2 else 0x03):
        _fail(f"{name} segment is not canonical base64url (stray trailing bits)")
    try:
        return binascii.a2b_base64(
            segment.translate(_TO_STANDARD) + b"=" * (-tail % 4), strict_mode=True
        )
    except (binascii.Error, ValueError):
        _fail(f"{name} segment has characters outside unpadded base64url")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate member name {one_line(repr(key), 60)}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-standard JSON constant {name}")


# Built once (json.loads with hooks builds a decoder on every call); its scanner is called
# directly, which is what JSONDecoder.decode does after skipping whitespace with a regex.
_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # set in JSONDecoder.__init__, untyped
_JSON_WHITESPACE = " \t\n\r"  # RFC 8259 §2


def _json_object(raw: bytes, name: str) -> dict[str, Any]:
    """Parse ``raw`` as a UTF-8 JSON object with unique member names and standard numbers only."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{name} is not UTF-8")
    document = text.strip(_JSON_WHITESPACE)
    try:
        value, end = _SCAN(document, 0)
    except StopIteration:
        _fail(f"{name} is not valid JSON: expecting a value at the start")
    except RecursionError:
        _fail(f"{name} JSON is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, duplicates, NaN, oversized integers
        _fail(f"{name} is not valid JSON: {one_line(exc, 120)}")
    if end != len(document):
        _fail(f"{name} is not valid JSON: extra data at character {end}")
    if not isinstance(value, dict):
        _fail(f"{name} is JSON {type(value).__name__}, not an object")
    return value


# camelCase (what AWS's verifiers read) -> PascalCase (AWS's prose examples).
_SPELLINGS = {
    name: name[0].upper() + name[1:] for name in ("productCode", "publicKeyVersion", "nonce", "iat")
}


def _claim(claims: Mapping[str, Any], camel: str) -> tuple[Any, ...]:
    """Every value given for a claim, under its camelCase and PascalCase spellings."""
    pascal = _SPELLINGS[camel]
    if pascal not in claims:
        if camel not in claims:
            _fail(f"claim {camel} is missing")
        return (claims[camel],)
    return (claims[camel], claims[pascal]) if camel in claims else (claims[pascal],)


def _check_expectations(product_code: object, public_key_version: object, nonce: object) -> None:
    """The caller's expected values are ours to get right: a wrong type is a configuration bug."""
    if not isinstance(product_code, str) or not product_code:
        raise ConfigurationError("expected product_code must be a non-empty string")
    if (
        not isinstance(public_key_version, int)
        or isinstance(public_key_version, bool)
        or public_key_version < 1
    ):
        raise ConfigurationError("expected public_key_version must be an integer >= 1")
    if not isinstance(nonce, str) or not nonce:
        raise ConfigurationError("expected nonce must be a non-empty string")


def verify_signature(
    token: str | bytes,
    *,
    product_code: str,
    public_key_version: int,
    nonce: str,
    public_key: object,
    now: float | None = None,
    leeway: float = DEFAULT_IAT_LEEWAY,
    min_key_bits: int = MIN_KEY_BITS,
) -> VerifiedEntitlement:
    """Verify a RegisterUsage ``Signature`` against the request that produced it.

    ``product_code``, ``public_key_version`` and ``nonce`` are the values the RegisterUsage request
    carried; ``public_key`` is the seller's RSA public key object for that version (choose it by the
    version you requested, never by anything in the token). ``now`` is seconds since the epoch
    (default: the system clock).

    Returns the verified claims. Raises `VerificationError` with the reason for any token that does
    not verify, and `ConfigurationError` (`UntrustedKeyError`) for an unacceptable key or expected
    value. No other exception escapes for any token.
    """
    _check_expectations(product_code, public_key_version, nonce)
    key = _checked_key(public_key, min_key_bits)  # step 1
    try:
        signing_input, header_raw, payload_raw, signature = _split(token)  # steps 2-3
        _check_header(header_raw)  # step 4
        _check_signature(  # step 5
            key,
            signing_input=signing_input,
            signature=signature,
            version=public_key_version,
            product_code=product_code,
        )
        claims = _json_object(payload_raw, "payload")  # step 6
        issued_at = _check_claims(  # step 7
            claims,
            product_code=product_code,
            public_key_version=public_key_version,
            nonce=nonce,
            now=now,
            leeway=leeway,
        )
    except VerificationError:
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed: anything unforeseen is a refusal
        _fail(f"token could not be processed ({type(exc).__name__})")
    return VerifiedEntitlement(
        product_code=product_code,
        public_key_version=public_key_version,
        nonce=nonce,
        issued_at=issued_at,
        claims=MappingProxyType(claims),
    )


def _checked_key(public_key: object, min_bits: int) -> RSAPublicKey:
    global _last_checked_key  # noqa: PLW0603 - a one-entry memo of a pure check
    last = _last_checked_key
    if last is not None and last[0] is public_key and last[1] == min_bits:
        return public_key  # type: ignore[return-value]  # checked on the way in
    key = check_public_key(public_key, min_bits=min_bits)
    _last_checked_key = (public_key, min_bits)
    return key


def _split(token: object) -> tuple[bytes, bytes, bytes, bytes]:
    """Steps 2-3: a bounded ASCII string of three canonical base64url segments.

    Returns the signing input (``header.payload`` as sent) and the three decoded segments.
    """
    if isinstance(token, str):
        if len(token) > MAX_TOKEN_LENGTH:
            _fail(f"token is {len(token)} characters, over the {MAX_TOKEN_LENGTH}-character cap")
        try:
            data = token.encode("ascii")
        except UnicodeEncodeError as exc:
            # Name the segment the character is in, as the alphabet check would have.
            where = token[: exc.start].count(".")
            if where < 3:
                segment = ("header", "payload", "signature")[where]
                _fail(f"{segment} segment has characters outside unpadded base64url")
            _fail("token is not ASCII")
    elif isinstance(token, bytes | bytearray):
        if len(token) > MAX_TOKEN_LENGTH:
            _fail(f"token is {len(token)} bytes, over the {MAX_TOKEN_LENGTH}-byte cap")
        data = bytes(token)
        if not data.isascii():
            _fail("token is not ASCII")
    else:
        _fail(f"token is {type(token).__name__}, not a string")
    if not data:
        _fail("token is empty")
    segments = data.split(b".")
    if len(segments) != 3:
        _fail(f"token has {len(segments)} segments; a JWS compact serialization has 3")
    header_b64, payload_b64, signature_b64 = segments
    # Decode every segment now, so a malformed payload is refused before any RSA work.
    return (
        data[: len(header_b64) + 1 + len(payload_b64)],
        _b64url_decode(header_b64, "header"),
        _b64url_decode(payload_b64, "payload"),
        _b64url_decode(signature_b64, "signature"),
    )


def _check_header(header_raw: bytes) -> None:
    """Step 4: the algorithm is pinned; no extension we would have to understand."""
    if header_raw in _VALID_HEADERS:
        return
    header = _json_object(header_raw, "header")
    alg = header.get("alg")
    if type(alg) is not str or alg != ALGORITHM:
        _fail(f"header alg is {_show(alg)}; only {ALGORITHM} is accepted")
    if "crit" in header:
        _fail(f"header has crit {_show(header['crit'])}; no critical extension is understood")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        _fail(f"header typ is {_show(typ)}, not JWT")
    if len(_VALID_HEADERS) < _MAX_REMEMBERED_HEADERS:
        _VALID_HEADERS.add(header_raw)


def _check_signature(
    key: RSAPublicKey,
    *,
    signing_input: bytes,
    signature: bytes,
    version: int,
    product_code: str,
) -> None:
    """Step 5: RSASSA-PSS over the signing input, before the payload is parsed at all."""
    modulus_bytes = (key.key_size + 7) // 8
    if len(signature) != modulus_bytes:
        _fail(f"signature is {len(signature)} bytes; public key v{version} needs {modulus_bytes}")
    if not ps256_verifies(key, signing_input, signature):
        _fail(f"signature does not verify with public key v{version} of product {product_code}")


def ps256_verifies(key: RSAPublicKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a PS256 signature of ``message`` by ``key``: exactly the modulus
    length (RFC 8017 §8.1.2 step 1), then RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte
    salt (RFC 7518 §3.5). The only signature check the package makes (step 5 calls it); public so
    that known-answer vectors (Wycheproof) can exercise it with messages that are not JWS
    signing inputs. Does not check the key: `check_public_key` does that."""
    if len(signature) != (key.key_size + 7) // 8:
        return False
    try:
        key.verify(signature, message, _PSS, _SHA256)
    except InvalidSignature:
        return False
    return True


def _check_claims(
    claims: Mapping[str, Any],
    *,
    product_code: str,
    public_key_version: int,
    nonce: str,
    now: float | None,
    leeway: float,
) -> int:
    """Step 7: every spelling of every claim equals what the request carried. Returns ``iat``."""
    for value in _claim(claims, "productCode"):
        _check_string_claim("productCode", value, product_code)
    for value in _claim(claims, "publicKeyVersion"):
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(f"claim publicKeyVersion is {type(value).__name__}, not an integer")
        if value != public_key_version:
            _fail(
                f"claim publicKeyVersion is {_show(value)}, but the request named "
                f"{public_key_version}"
            )
    for value in _claim(claims, "nonce"):
        _check_string_claim("nonce", value, nonce)
    values = _claim(claims, "iat")
    reference = time.time() if now is None else now
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(f"claim iat is {type(value).__name__}, not an integer NumericDate")
        if not 0 <= value <= _MAX_NUMERIC_DATE:
            _fail(f"claim iat {_show(value)} is out of range")
        if value > reference + leeway:
            _fail(
                f"claim iat is {value - reference:.0f}s in the future (leeway {leeway:.0f}s); "
                "check this host's clock"
            )
    if len(set(values)) != 1:
        _fail("claims iat and Iat disagree")
    issued_at: int = values[0]
    return issued_at


def _check_string_claim(name: str, value: object, expected: str) -> None:
    if not isinstance(value, str):
        _fail(f"claim {name} is {type(value).__name__}, not a string")
    if not value:
        _fail(f"claim {name} is empty")
    if not hmac.compare_digest(value.encode("utf-8"), expected.encode("utf-8")):
        if name == "nonce":
            _fail("claim nonce does not match the request's nonce (replayed or foreign answer)")
        _fail(f"claim {name} is {_show(value)}, but the request was for {expected}")
