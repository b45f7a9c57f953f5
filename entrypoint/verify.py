"""Verification of the RegisterUsage ``Signature``: the pure core of the product.

`verify_signature` takes the token, the values the request carried, the public key object and
``now``; its result depends on nothing else: no files, no network, no logging, and the clock only
when ``now`` is omitted (pyjwt reads the wall clock in passing; with its time checks off, nothing
depends on it). It returns a `VerifiedEntitlement` or raises `VerificationError` with the
reason (`ConfigurationError` for the caller's own values); nothing pyjwt or a parser raises escapes
raw (sigstore 4.5.0's lesson, and pyjwt's hostile-token history).

The JWS work is pyjwt's: it decodes the three segments, parses the header, refuses unknown
``crit`` extensions (RFC 7515 §4.1.11; pyjwt >= 2.12.0, CVE-2026-32597) and ``b64: false``
payloads (RFC 7797; 2.13.0, CVE-2026-48525), checks that the header's ``alg`` is the one algorithm
we allow (``algorithms=["PS256"]``), verifies RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte
salt (its ``RSAPSSAlgorithm``, ``salt_length=digest_size``: RFC 7518 §3.5) and requires ``iat``.
``kid``, ``jku``, ``x5u``, ``jwk``, ``x5c`` are never followed (RFC 8725 §3.10): pyjwt is given
the key object for the version the request named.

Ours, in order (each failure names its reason):

1. the caller's values: expected claims, ``now``, ``leeway`` and ``min_key_bits`` finite and in
   range, and the key an RSA public key object of at least 2048 bits, not denylisted
   (`check_public_key`), so that pyjwt never sees bytes, text or a secret it could take for an
   HMAC key;
2. the token's text, before pyjwt reads it: a string of at most `MAX_TOKEN_LENGTH` ASCII
   characters, exactly three non-empty segments of canonical, unpadded base64url (RFC 7515 §2,
   §7.1), so that one token has one spelling (pyjwt 2.15 accepts ``=`` padding again, and
   pyjwt < 2.14 dropped characters outside the alphabet). Checked on the text, never decoded;
3. pyjwt's decode, as above, payload parse included (its ``json.loads``: the last of duplicate
   names wins; only the signing key could produce such a payload, and the claims we check are
   the ones we return, so there is no second reading to disagree with);
4. the signature is exactly the modulus length (RFC 8017 §8.1.2 step 1): cryptography accepts a
   signature whose leading zero byte was stripped, which would be a second spelling;
5. ``typ`` (if present) is ``JWT`` (RFC 8725 §3.11);
6. claims (camelCase as AWS's verifiers read them, PascalCase accepted too; every spelling present
   is checked): ``productCode`` equals the request's, ``publicKeyVersion`` is the integer the
   request named, ``nonce`` equals the request's (constant-time), ``iat`` is an integer
   NumericDate not more than ``leeway`` seconds after ``now``. pyjwt's own time checks are off:
   they read the wall clock rather than ``now`` and take ``"1"``, ``1.5`` or ``true`` for an
   ``iat``; AWS documents no ``exp``, and an old ``iat`` is accepted because the nonce, not the
   time, proves freshness.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .errors import ConfigurationError, UntrustedKeyError, VerificationError, one_line
from .keys import MIN_KEY_BITS, check_public_key

if TYPE_CHECKING:
    from jwt.types import Options

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
# A leeway over a day would switch the future-iat check off in all but name.
_MAX_LEEWAY = 86_400.0
ALGORITHM = "PS256"
# pyjwt's RSA minimum (NIST SP 800-131A): under it pyjwt warns on stderr (or, with
# enforce_minimum_key_length, refuses), so a smaller min_key_bits is refused as the caller's.
_PYJWT_MIN_KEY_BITS = 2048
# RFC 7519 NumericDate upper bound we accept at all: year 9999, so datetime can render it.
_MAX_NUMERIC_DATE = 253402300799

_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_VALUES = {c: i for i, c in enumerate(_B64URL_ALPHABET)}

# pyjwt's options: every check whose meaning is ours is off, so none can loosen or change it.
_OPTIONS: Options = {
    "verify_signature": True,
    "require": ["iat"],  # RFC 7519 §4.1.6's spelling; the others have two (see _claim)
    "verify_iat": False,  # wall clock, not `now`; int() of "1", 1.5, true: ours below
    "verify_exp": False,  # wall clock; AWS documents no expiry (the nonce proves freshness)
    "verify_nbf": False,  # wall clock; not part of AWS's Signature
    "verify_aud": False,  # not part of AWS's Signature: unknown claims stay unchecked
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "enforce_minimum_key_length": True,  # never a warning on stderr: step 1 already refused
}


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


_PYJWT = jwt.PyJWT(options=_OPTIONS)
_ALGORITHMS = [ALGORITHM]
# The algorithm object pyjwt verifies PS256 with: `ps256_verifies` runs known-answer vectors
# through the same class with the same parameters.
_PS256 = jwt.get_algorithm_by_name(ALGORITHM)


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


def _real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_clock(now: object, leeway: object, min_key_bits: object) -> float:
    """``now``, ``leeway`` and ``min_key_bits`` are the caller's: NaN or infinity would switch the
    future-iat check off (NaN compares false), so anything non-finite or out of range is refused.
    Returns the reference time."""
    if not _real(leeway) or not 0 <= leeway <= _MAX_LEEWAY:
        raise ConfigurationError(
            f"leeway must be a number of seconds from 0 to {_MAX_LEEWAY:.0f}, not {_show(leeway)}"
        )
    reference = time.time() if now is None else now
    if not _real(reference) or not 0 <= reference <= _MAX_NUMERIC_DATE:
        raise ConfigurationError(
            f"now must be seconds since the epoch from 0 to {_MAX_NUMERIC_DATE} (year 9999), "
            f"not {_show(reference)}"
        )
    if (
        not isinstance(min_key_bits, int)
        or isinstance(min_key_bits, bool)
        or min_key_bits < _PYJWT_MIN_KEY_BITS
    ):
        raise ConfigurationError(
            f"min_key_bits must be an integer >= {_PYJWT_MIN_KEY_BITS} (pyjwt's minimum, NIST "
            f"SP 800-131A), not {_show(min_key_bits)}"
        )
    return float(reference)


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
    version you requested, never by anything in the token; never PEM bytes or text). ``now`` is
    seconds since the epoch (default: the system clock); ``leeway`` how far in the future ``iat``
    may be (0 to 86,400 s); ``min_key_bits`` may raise the 2048-bit minimum, not lower it.

    Returns the verified claims. Raises `VerificationError` with the reason for any token that does
    not verify, and `ConfigurationError` (`UntrustedKeyError`) for an unacceptable key or expected
    value. No other exception escapes for any token.
    """
    _check_expectations(product_code, public_key_version, nonce)
    reference = _check_clock(now, leeway, min_key_bits)
    key = check_public_key(public_key, min_bits=min_key_bits)  # step 1
    try:
        decoded, issued_at = _verify_token(
            token,
            key,
            product_code=product_code,
            public_key_version=public_key_version,
            nonce=nonce,
            now=reference,
            leeway=float(leeway),
        )
    except (VerificationError, ConfigurationError):
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed: a check of ours that broke is a refusal
        _fail(f"token refused: {type(exc).__name__}: {one_line(exc, 120)}")
    return VerifiedEntitlement(
        product_code=product_code,
        public_key_version=public_key_version,
        nonce=nonce,
        issued_at=issued_at,
        claims=MappingProxyType(decoded["payload"]),
    )


def _verify_token(
    token: object,
    key: RSAPublicKey,
    *,
    product_code: str,
    public_key_version: int,
    nonce: str,
    now: float,
    leeway: float,
) -> tuple[dict[str, Any], int]:
    """Steps 2-6. Returns pyjwt's decoded token and ``iat``."""
    data, signature_bytes = _check_text(token)  # step 2
    decoded = _decode(data, key, signature_bytes, public_key_version, product_code)  # step 3
    if signature_bytes != _modulus_bytes(key):  # step 4
        _fail(_length_reason(signature_bytes, key, public_key_version))
    typ = decoded["header"].get("typ")  # step 5
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        _fail(f"header typ is {_show(typ)}, not JWT")
    issued_at = _check_claims(  # step 6
        decoded["payload"],
        product_code=product_code,
        public_key_version=public_key_version,
        nonce=nonce,
        now=now,
        leeway=leeway,
    )
    return decoded, issued_at


def _check_text(token: object) -> tuple[bytes, int]:
    """Step 2: a bounded ASCII string of three canonical base64url segments, checked as text.

    Returns the token as bytes and the length its signature segment decodes to (arithmetic on
    the segment's length: 4 characters carry 3 bytes)."""
    if isinstance(token, str):
        if len(token) > MAX_TOKEN_LENGTH:
            _fail(f"token is {len(token)} characters, over the {MAX_TOKEN_LENGTH}-character cap")
        if not token.isascii():
            # Name the segment the character is in, as the alphabet check would have.
            where = token[: next(i for i, c in enumerate(token) if not c.isascii())].count(".")
            if where < 3:
                part = ("header", "payload", "signature")[where]
                _fail(f"{part} segment has characters outside unpadded base64url")
            _fail("token is not ASCII")
        data = token.encode("ascii")
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
    for segment, name in zip(segments, ("header", "payload", "signature"), strict=True):
        _check_segment(segment, name)
    return data, len(segments[2]) * 3 // 4


def _check_segment(segment: bytes, name: str) -> None:
    """Unpadded base64url (RFC 7515 §2) with canonical trailing bits: the text alone decides."""
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
    if tail and _B64URL_VALUES[segment[-1]] & (0x0F if tail == 2 else 0x03):
        _fail(f"{name} segment is not canonical base64url (stray trailing bits)")


def _decode(
    data: bytes, key: RSAPublicKey, signature_bytes: int, version: int, product_code: str
) -> dict[str, Any]:
    """Step 3: pyjwt's decode, every exception turned into a reason (pyjwt's own, or the type
    and message of anything else it lets through: RecursionError on deep JSON before 2.14/2.15,
    a key object that raises)."""
    try:
        return _PYJWT.decode_complete(data, key, algorithms=_ALGORITHMS)
    except jwt.InvalidAlgorithmError as exc:
        _fail(_algorithm_reason(data, exc))
    except jwt.InvalidSignatureError:
        if signature_bytes != _modulus_bytes(key):  # the likelier reason, when it is one
            _fail(_length_reason(signature_bytes, key, version))
        _fail(f"signature does not verify with public key v{version} of product {product_code}")
    except jwt.MissingRequiredClaimError as exc:
        _fail(f"claim {one_line(exc.claim, 40)} is missing")
    except jwt.DecodeError as exc:
        _fail(f"token is not a JWS compact serialization: {one_line(exc, 160)}")
    except jwt.InvalidKeyError as exc:  # unreachable: step 1 applies a stricter minimum
        raise UntrustedKeyError(f"public key refused by pyjwt: {one_line(exc, 160)}") from None
    except jwt.PyJWTError as exc:
        _fail(f"token refused by pyjwt: {one_line(exc, 160)}")
    except Exception as exc:  # noqa: BLE001 - fail closed: whatever pyjwt let through is a refusal
        _fail(f"token refused: pyjwt raised {type(exc).__name__}: {one_line(exc, 120)}")


def _algorithm_reason(data: bytes, exc: jwt.InvalidAlgorithmError) -> str:
    """Name the ``alg`` pyjwt refused, read back through pyjwt (which parsed it already)."""
    try:
        alg = jwt.get_unverified_header(data).get("alg")
    except Exception:  # noqa: BLE001 - the reason is a courtesy; pyjwt's message still says why
        return f"header alg refused by pyjwt: {one_line(exc, 120)}"
    return f"header alg is {_show(alg)}; only {ALGORITHM} is accepted"


def _modulus_bytes(key: RSAPublicKey) -> int:
    return (key.key_size + 7) // 8


def _length_reason(signature_bytes: int, key: RSAPublicKey, version: int) -> str:
    return (
        f"signature is {signature_bytes} bytes; public key v{version} needs {_modulus_bytes(key)}"
    )


def ps256_verifies(key: RSAPublicKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a PS256 signature of ``message`` by ``key``: exactly the modulus
    length (RFC 8017 §8.1.2 step 1, which `verify_signature` step 4 applies), then pyjwt's PS256
    algorithm object: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a salt of the digest's 32 bytes
    (RFC 7518 §3.5). Public so that known-answer vectors (Wycheproof) can exercise the code the
    verifier uses with messages that are not JWS signing inputs. Does not check the key:
    `check_public_key` does that."""
    if len(signature) != _modulus_bytes(key):
        return False
    return _PS256.verify(message, key, signature)


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


def _check_claims(
    claims: Mapping[str, Any],
    *,
    product_code: str,
    public_key_version: int,
    nonce: str,
    now: float,
    leeway: float,
) -> int:
    """Step 6: every spelling of every claim equals what the request carried. Returns ``iat``."""
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
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(f"claim iat is {type(value).__name__}, not an integer NumericDate")
        if not 0 <= value <= _MAX_NUMERIC_DATE:
            _fail(f"claim iat {_show(value)} is out of range")
        if value > now + leeway:
            _fail(
                f"claim iat is {value - now:.0f}s in the future (leeway {leeway:.0f}s); "
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
    # surrogatepass: JSON's \ud800 escapes give strings UTF-8 cannot encode; the comparison must
    # still answer (it is injective, so equal bytes are equal strings).
    if not hmac.compare_digest(
        value.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    ):
        if name == "nonce":
            _fail("claim nonce does not match the request's nonce (replayed or foreign answer)")
        _fail(f"claim {name} is {_show(value)}, but the request was for {expected}")
