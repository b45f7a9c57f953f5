"""The attack corpus: one named case per known attack on JWS verifiers, each asserting the reason.

Written after pyjwt's ``tests/test_advisory.py``: every case names the attack or advisory it
replays. Sources:

* RFC 8725 (JWT Best Current Practices): §2.1 weak signatures and ``alg: none``, §2.2 weak keys,
  §2.8 indirect attacks through ``jku``/``x5u``/``kid``, §3.1 algorithm verification, §3.2
  appropriate algorithms, §3.4 validate cryptographic inputs, §3.7 UTF-8, §3.10 do not trust
  received claims (key selection), §3.11 explicit typing.
* RFC 7515 §4.1.11 (``crit``), §2 and §7.1 (base64url, compact serialization); RFC 7518 §3.5
  (PS256: SHA-256, MGF1-SHA-256, salt of 32 bytes); RFC 7797 (``b64``).
* pyjwt's advisories: CVE-2017-11424 (a PEM/SSH public key used as the HMAC secret),
  CVE-2022-29217 / GHSA-ffqj-6fqr-9h24 (key confusion through non-blocklisted public key
  formats), CVE-2024-53861 (2.10.0: ``iss`` compared by substring), CVE-2026-32597 /
  GHSA-752w-5fwx-jx9f (2.12.0: unknown ``crit`` extensions accepted), and 2.13.0's:
  GHSA-xgmm-8j9v-c9wx / CVE-2026-48526 (a JWK JSON text accepted as the HMAC secret),
  GHSA-jq35-7prp-9v3f / CVE-2026-48523 (header ``alg`` checked as a string while another
  algorithm verified), CVE-2026-48525 (detached ``b64: false`` payload decoded before the rules:
  work amplification), the ``jku`` SSRF and unbounded JWKS refetch on unknown ``kid``, and the
  HMAC key-confusion hardening (an empty or DER-shaped HMAC secret). No 2.14 advisory was
  published when this was written.

The verifier has one code path (pyjwt with ``algorithms=["PS256"]``, key chosen by the requested
version, our checks of the key, the token's text and the claims around it), so most of these
are refused by pyjwt's algorithm allow-list or the signature check; the table pins *which*
reason (pyjwt's, where pyjwt refuses), so a refactoring that moved a check later (e.g. parsing
the payload before verifying) or a pyjwt release that changed what it refuses shows up here.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from entrypoint import (
    ConfigurationError,
    EntrypointError,
    ExitCode,
    UntrustedKeyError,
    VerificationError,
    load_public_key_pem,
    verify_signature,
)
from entrypoint.keys import spki_fingerprint
from entrypoint.verify import MAX_TOKEN_LENGTH, ps256_verifies

from .support import JWT_IO_DEMO_FINGERPRINT, KEYS, b64url, claims, encode_part, mint

PRODUCT = "prod-test"
NONCE = "Zm9yZ2VkLW5vbmNlLXRoYXQtaXMtNDMtY2hhcmFjdGVycw"
NOW = 1_790_000_100
SIGNER = KEYS.get("attacks-signer")
PUBLIC = SIGNER.public_key()
ATTACKER = KEYS.get("attacks-attacker")
OTHER_PRODUCT_KEY = KEYS.get("attacks-other-product")
SMALL = KEYS.get("attacks-small", bits=1024)
ASSETS = Path(__file__).with_name("assets") / "keys"


NOT_AN_OBJECT = "Invalid payload string: must be a json object"


def _load_private(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


# The jwt.io RS256 demo key, whose public half is the only PEM in AWS's RegisterUsage docs.
JWT_IO_PRIVATE = _load_private(ASSETS / "jwt-io-demo-private.pem")


def verify(token: object, **overrides: Any) -> object:
    arguments: dict[str, Any] = {
        "product_code": PRODUCT,
        "public_key_version": 1,
        "nonce": NONCE,
        "public_key": PUBLIC,
        "now": NOW,
    }
    arguments.update(overrides)
    return verify_signature(token, **arguments)  # type: ignore[arg-type]


def good(**extra: Any) -> dict[str, Any]:
    body = claims(PRODUCT, 1, NONCE, NOW - 100)
    body.update(extra)
    return body


def signing_input(header: Any, payload: Any) -> str:
    return f"{b64url(encode_part(header))}.{b64url(encode_part(payload))}"


def compact(header: Any, payload: Any, signature: bytes) -> str:
    return f"{signing_input(header, payload)}.{b64url(signature)}"


def signed(payload: Any = None, header: Any = None, key: rsa.RSAPrivateKey = SIGNER) -> str:
    """A real PS256 signature by ``key`` (default: the trusted key) over exactly these parts."""
    return mint(key, good() if payload is None else payload, header)


def hs(secret: bytes, alg: str = "HS256", header_alg: str | None = None, size: int = 0) -> str:
    """An HMAC token: the classic algorithm-confusion forgery (the public key is the secret)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header = {"alg": header_alg or alg, "typ": "JWT"}
    data = signing_input(header, good()).encode()
    mac = hmac.new(secret, data, digest).digest()
    if size:
        mac = (mac * (size // len(mac) + 1))[:size]  # stretched to the modulus length
    return compact(header, good(), mac)


def other_scheme(alg: str, key: rsa.RSAPrivateKey = SIGNER, header_alg: str | None = None) -> str:
    """A valid RSA signature by the trusted key, but of another scheme than PS256."""
    header = {"alg": header_alg or alg, "typ": "JWT"}
    data = signing_input(header, good()).encode()
    hash_for = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
    chosen = hash_for[alg[2:]]
    if alg.startswith("RS"):
        signature = key.sign(data, padding.PKCS1v15(), chosen)
    else:
        pss = padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
        signature = key.sign(data, pss, chosen)
    return compact(header, good(), signature)


def pss_salt(salt: int) -> str:
    return mint(SIGNER, good(), salt_length=salt)


def with_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def public_forms() -> dict[str, bytes]:
    """The trusted public key in every form a confused verifier might take as an HMAC secret."""
    pem = PUBLIC.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "pem-spki": pem,
        "pem-pkcs1": PUBLIC.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "der-spki": PUBLIC.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der-pkcs1": PUBLIC.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        ),
        "openssh": PUBLIC.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "jwk": jwt.algorithms.RSAAlgorithm.to_jwk(PUBLIC).encode(),
        "modulus": PUBLIC.public_numbers().n.to_bytes(256, "big"),
        "empty": b"",
    }


@dataclass(frozen=True)
class Attack:
    name: str
    make: Callable[[], object]
    reason: str  # a regular expression the refusal's reason must match
    error: type[EntrypointError] = VerificationError


def _deep(depth: int) -> bytes:
    return b'{"alg":"PS256","x":' + b"[" * depth + b"]" * depth + b"}"


def _deep_payload(depth: int) -> bytes:
    return json.dumps(good())[:-1].encode() + b',"x":' + b"[" * depth + b"]" * depth + b"}"


@dataclass(frozen=True)
class _WithKey:
    key: object


def _with_key(key: object) -> _WithKey:
    return _WithKey(key)


def _demo_public_pem() -> bytes:
    return JWT_IO_PRIVATE.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _impossible_length() -> str:
    parts = signed().split(".")
    parts[1] += "A" * ((1 - len(parts[1])) % 4)  # a valid segment is never 1 mod 4 long
    return ".".join(parts)


def _none_alg(alg: str) -> str:
    return compact({"alg": alg}, good(), NONE_SIG)


def _without(name: str) -> str:
    return signed({k: v for k, v in good().items() if k != name})


def _inject(index: int, char: str) -> str:
    parts = signed().split(".")
    middle = len(parts[index]) // 2
    parts[index] = parts[index][:middle] + char + parts[index][middle:]
    return ".".join(parts)


def _padded(index: int) -> str:
    parts = signed(good(x="ab")).split(".")
    parts[index] += "=" * (-len(parts[index]) % 4 or 4)
    return ".".join(parts)


def _stray_bits(index: int) -> str:
    """Flip an unused low bit of the last base64url character: same bytes, another spelling."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts = signed(header={"alg": "PS256", "typ": "JWT", "x": "a"}).split(".")
    segment = parts[index]
    assert len(segment) % 4 in (2, 3), "pick parts whose length leaves unused bits"
    last = alphabet.index(segment[-1])
    parts[index] = segment[:-1] + alphabet[last ^ 1]
    return ".".join(parts)


def _strip_leading() -> str:
    """A genuine signature whose first byte is 0 (PSS is randomized: 1 in 256), minus that byte:
    the same integer, the wrong length. 5,000 tries fail with probability e^-19."""
    for attempt in range(5000):
        token = signed(good(n=attempt))
        raw = _decode(token.split(".")[2])
        if raw[0] == 0:
            return with_segment(token, 2, b64url(raw[1:]))
    raise AssertionError("no signature with a leading zero byte in 5000 tries")


def _leading_zero() -> str:
    token = signed()
    return with_segment(token, 2, b64url(b"\x00" + _decode(token.split(".")[2])))


def _decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


NONE_SIG = b"\x00" * 256
ATTACKS: list[Attack] = [
    # -- RFC 8725 §2.1, §3.1: "alg": "none" (CVE-2015-9235 class), in every spelling -----------
    *[
        Attack(f"alg {alg}", partial(_none_alg, alg), f"alg is '{alg}'")
        for alg in ("none", "None", "noNE", "NONE", "nOnE")
    ],
    Attack(
        "alg none, empty signature",
        lambda: compact({"alg": "none"}, good(), b""),
        "signature segment is empty",
    ),
    Attack(
        "alg none, no signature segment",
        lambda: signing_input({"alg": "none"}, good()),
        "token has 2 segments",
    ),
    Attack(
        "alg none, dot only",
        lambda: signing_input({"alg": "none"}, good()) + ".",
        "signature segment is empty",
    ),
    Attack("alg missing", lambda: compact({"typ": "JWT"}, good(), NONE_SIG), "alg is None"),
    Attack("alg null", lambda: compact({"alg": None}, good(), NONE_SIG), "alg is None"),
    Attack("alg empty", lambda: compact({"alg": ""}, good(), NONE_SIG), "alg is ''"),
    Attack(
        "alg PS256 with trailing space",
        lambda: signed(header={"alg": "PS256 "}),
        r"alg is 'PS256 '",
    ),
    Attack(
        "alg PS256 with NUL", lambda: signed(header={"alg": "PS256\u0000"}), r"alg is 'PS256\\x00'"
    ),
    Attack("alg list", lambda: signed(header={"alg": ["PS256"]}), r"alg is \['PS256'\]"),
    Attack(
        "alg object", lambda: signed(header={"alg": {"PS256": True}}), r"alg is \{'PS256': True\}"
    ),
    # -- CVE-2017-11424, CVE-2022-29217, GHSA-xgmm-8j9v-c9wx, PYSEC-2026-179: the public key as an
    #    HMAC secret, in every form (RFC 8725 §2.1 "substitution attacks") --------------------
    *[
        Attack(
            f"HS256 keyed with the public key ({form})",
            partial(hs, secret),
            "alg is 'HS256'",
        )
        for form, secret in public_forms().items()
    ],
    Attack(
        "HS384 keyed with the public key",
        lambda: hs(public_forms()["pem-spki"], "HS384"),
        "alg is 'HS384'",
    ),
    Attack(
        "HS512 keyed with the public key",
        lambda: hs(public_forms()["pem-spki"], "HS512"),
        "alg is 'HS512'",
    ),
    # ... and with the header lying about it (GHSA-jq35-7prp-9v3f: header alg vs. algorithm used)
    Attack(
        "HMAC under a PS256 header",
        lambda: hs(public_forms()["pem-spki"], header_alg="PS256"),
        "signature is 32 bytes; public key v1 needs 256",
    ),
    Attack(
        "HMAC stretched to the modulus length under a PS256 header",
        lambda: hs(public_forms()["pem-spki"], header_alg="PS256", size=256),
        "signature does not verify",
    ),
    # -- RFC 8725 §3.2: other algorithms, with a valid signature by the trusted RSA key --------
    *[
        Attack(f"{alg} signed by the trusted key", partial(other_scheme, alg), f"alg is '{alg}'")
        for alg in ("RS256", "RS384", "RS512", "PS384", "PS512")
    ],
    *[
        Attack(
            f"{alg} signature under a PS256 header",
            partial(other_scheme, alg, header_alg="PS256"),
            "signature does not verify",
        )
        for alg in ("RS256", "RS384", "RS512", "PS384", "PS512")
    ],
    Attack(
        "ES256",
        lambda: jwt.encode(good(), ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "alg is 'ES256'",
    ),
    Attack(
        "EdDSA",
        lambda: jwt.encode(good(), ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        "alg is 'EdDSA'",
    ),
    # RFC 7518 §3.5: the salt is the hash length, 32 bytes; any other salt is another algorithm.
    *[
        Attack(
            f"PSS salt of {salt} bytes",
            partial(pss_salt, salt),
            "signature does not verify",
        )
        for salt in (0, 20, 31, 33, 64, 222)
    ],
    # -- Keys: RFC 8725 §2.2, §3.5 -----------------------------------------------------------
    Attack(
        "valid PS256 from another key",
        lambda: signed(key=ATTACKER),
        "does not verify with public key v1",
    ),
    Attack(
        "valid PS256 from another trusted product's key",
        lambda: signed(key=OTHER_PRODUCT_KEY),
        "does not verify",
    ),
    Attack("valid PS256 from a 1024-bit key", lambda: signed(key=SMALL), "signature is 128 bytes"),
    Attack(
        "forged with the jwt.io demo key (AWS's documentation example)",
        lambda: signed(key=JWT_IO_PRIVATE),
        "signature is 128 bytes",
    ),
    # -- RFC 8725 §2.8, §3.10: key selection from the token is ignored -----------------------
    Attack(
        "embedded jwk of the attacker (CVE-2018-0114 class)",
        lambda: signed(
            header={
                "alg": "PS256",
                "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER.public_key())),
            },
            key=ATTACKER,
        ),
        "does not verify",
    ),
    Attack(
        "kid naming a file",
        lambda: signed(header={"alg": "PS256", "kid": "../../../../dev/null"}, key=ATTACKER),
        "does not verify",
    ),
    Attack(
        "kid with SQL",
        lambda: signed(header={"alg": "PS256", "kid": "' OR 1=1 --"}, key=ATTACKER),
        "does not verify",
    ),
    Attack(
        "x5c chain of the attacker",
        lambda: signed(header={"alg": "PS256", "x5c": ["MIIB"]}, key=ATTACKER),
        "does not verify",
    ),
    # -- RFC 7515 §4.1.11; CVE-2026-32597: crit must be understood, and we understand none --------
    Attack(
        "unknown crit extension (CVE-2026-32597)",
        lambda: signed(
            header={"alg": "PS256", "crit": ["x-custom-policy"], "x-custom-policy": "require-mfa"}
        ),
        "refused by pyjwt: Unsupported critical extension: x-custom-policy",
    ),
    Attack(
        "empty crit",
        lambda: signed(header={"alg": "PS256", "crit": []}),
        "Invalid 'crit' header: must be a non-empty list",
    ),
    Attack(
        "crit b64 false (RFC 7797; CVE-2026-48525)",
        lambda: signed(header={"alg": "PS256", "b64": False, "crit": ["b64"]}),
        "Payload segment must be empty when 'b64' is false",
    ),
    Attack(
        "b64 false without crit (RFC 7797 §3)",
        lambda: signed(header={"alg": "PS256", "b64": False}),
        "Payload segment must be empty when 'b64' is false",
    ),
    Attack(
        "crit not a list",
        lambda: signed(header={"alg": "PS256", "crit": "exp"}),
        "Invalid 'crit' header: must be a non-empty list",
    ),
    Attack(
        "crit naming a non-string",
        lambda: signed(header={"alg": "PS256", "crit": [{"b64": True}]}),
        "Invalid 'crit' header: values must be strings",
    ),
    Attack(
        "crit naming a member that is absent",
        lambda: signed(header={"alg": "PS256", "crit": ["b64"]}),
        "Critical extension 'b64' is missing from headers",
    ),
    # -- RFC 8725 §3.11: explicit typing ----------------------------------------------------------
    Attack(
        "typ of another kind of JWT",
        lambda: signed(header={"alg": "PS256", "typ": "at+jwt"}),
        "typ is 'at\\+jwt'",
    ),
    # -- RFC 7515 §7.1: compact serialization, exactly three segments ----------------------------
    Attack("one segment", lambda: "eyJhbGciOiJQUzI1NiJ9", "token has 1 segments"),
    Attack(
        "truncated: header and payload only",
        lambda: ".".join(signed().split(".")[:2]),
        "token has 2 segments",
    ),
    Attack("extra segment", lambda: signed() + "." + b64url(b"x"), "token has 4 segments"),
    Attack(
        "JWE-shaped (5 segments)",
        lambda: ".".join(["eyJhbGciOiJSU0EtT0FFUCJ9"] * 5),
        "token has 5 segments",
    ),
    Attack(
        "JSON serialization",
        lambda: json.dumps({"payload": "x", "signatures": []}),
        "token has 1 segments",
    ),
    Attack("empty token", lambda: "", "token is empty"),
    Attack("token as a list", lambda: ["a", "b", "c"], "token is list, not a string"),
    Attack("token as a dict", lambda: {"Signature": "a.b.c"}, "token is dict, not a string"),
    # -- RFC 7515 §2: strict base64url ----------------------------------------------------------
    *[
        Attack(
            f"non-base64url character {char!r} in the {part}",
            partial(_inject, index, char),
            "outside unpadded base64url",
        )
        for char in ("+", "/", "=", " ", "\n", "\t", "%", "é", "\u200b")
        for index, part in ((0, "header"), (1, "payload"), (2, "signature"))
        if not (char == "é" and index == 2)
    ],
    Attack("padding on the payload", lambda: _padded(1), "outside unpadded base64url"),
    Attack("padding on the signature", lambda: _padded(2), "outside unpadded base64url"),
    Attack(
        "padding in the middle of a segment",
        lambda: with_segment(signed(), 0, "eyJh=bGciOiJQUzI1NiJ9"),
        "outside",
    ),
    Attack(
        "impossible length (4n+1)",
        _impossible_length,
        "impossible base64url length",
    ),
    Attack(
        "non-canonical trailing bits (header)", lambda: _stray_bits(0), "not canonical base64url"
    ),
    Attack(
        "non-canonical trailing bits (signature)", lambda: _stray_bits(2), "not canonical base64url"
    ),
    Attack("non-ASCII bytes", lambda: "é".encode() + b".a.b", "token is not ASCII"),
    # -- RFC 8725 §3.7: JSON objects. The header is pyjwt's json.loads of the bytes (it guesses
    #    UTF-16 from \xff\xfe; see test_verify's HEADER_LAXITIES); the payload must be UTF-8 ------
    Attack(
        "header not UTF-8",
        lambda: signed(header=b"\xff\xfe{}"),
        "not a JWS compact serialization: Invalid header string",
    ),
    Attack(
        "header UTF-16, signed by the attacker",
        lambda: signed(header='{"alg":"PS256"}'.encode("utf-16"), key=ATTACKER),
        "signature does not verify",
    ),
    Attack(
        "header with a UTF-8 BOM, signed by the attacker",
        lambda: signed(header=b'\xef\xbb\xbf{"alg":"PS256"}', key=ATTACKER),
        "signature does not verify",
    ),
    Attack(
        "header JSON array",
        lambda: signed(header=b'[{"alg":"PS256"}]'),
        "Invalid header string: must be a json object",
    ),
    Attack(
        "kid not a string",
        lambda: signed(header={"alg": "PS256", "kid": ["../key"]}),
        "refused by pyjwt: Key ID header parameter must be a string",
    ),
    Attack(
        "payload overlong UTF-8 (C0 AE)",
        lambda: signed(b'{"nonce":"\xc0\xae"}'),
        "Invalid payload string: 'utf-8' codec can't decode",
    ),
    Attack(
        "payload lone surrogate byte sequence",
        lambda: signed({**good(), "nonce": "\ud800"}),
        "claim nonce does not match the request's nonce",
    ),
    Attack(
        "payload not JSON",
        lambda: signed(b"productCode=prod-test&nonce=x"),
        "Invalid payload string: Expecting value",
    ),
    Attack(
        "payload JSON with a trailing comma",
        lambda: signed(json.dumps(good())[:-1].encode() + b",}"),
        "Invalid payload string: Expecting property name",
    ),
    Attack(
        "payload JSON with comments",
        lambda: signed(b"/* */" + json.dumps(good()).encode()),
        "Invalid payload string: Expecting value",
    ),
    Attack(
        "payload JSON array",
        lambda: signed(json.dumps([good()]).encode()),
        NOT_AN_OBJECT,
    ),
    Attack(
        "payload JSON string",
        lambda: signed(json.dumps(json.dumps(good())).encode()),
        NOT_AN_OBJECT,
    ),
    Attack("payload JSON number", lambda: signed(b"1"), NOT_AN_OBJECT),
    Attack(
        "payload JSON true",
        lambda: signed(b"true"),
        NOT_AN_OBJECT,
    ),
    Attack(
        "payload JSON null",
        lambda: signed(b"null"),
        NOT_AN_OBJECT,
    ),
    Attack(
        "payload 5000-digit integer",
        lambda: signed(b'{"iat":' + b"9" * 5000 + b"}"),
        "Invalid payload string: Exceeds the limit",
    ),
    # Duplicate names: pyjwt's json.loads keeps the last, the one every claim check reads (the
    # genuine value last is accepted: tests/test_verify.py::test_payload_json_is_pyjwts_...).
    Attack(
        "duplicate nonce, evil last",
        lambda: signed(json.dumps(good())[:-1].encode() + b',"nonce":"evil"}'),
        "claim nonce does not match the request's nonce",
    ),
    Attack(
        "duplicate hidden by a JSON escape",
        lambda: signed(json.dumps(good())[:-1].encode() + b',"nonc\\u0065":"evil"}'),
        "claim nonce does not match the request's nonce",
    ),
    # The header has one reader, pyjwt (last name wins), deciding alg and verifying with it:
    Attack(
        "duplicate alg in the header, none last",
        lambda: signed(header=b'{"alg":"PS256","alg":"none"}'),
        "header alg is 'none'",
    ),
    Attack(
        "duplicate alg in the header, PS256 last, signed by the attacker",
        lambda: signed(header=b'{"alg":"none","alg":"PS256"}', key=ATTACKER),
        "signature does not verify",
    ),
    Attack(
        "header nested 100,000 deep",
        lambda: signed(header=_deep(100_000)),
        f"over the {MAX_TOKEN_LENGTH}-character cap",
    ),
    Attack(
        "header nested 5,000 deep",
        lambda: signed(header=_deep(5_000)),
        # pyjwt >= 2.14: DecodeError; before: RecursionError, wrapped with its message
        "maximum recursion depth exceeded",
    ),
    Attack(
        "payload nested 5,000 deep",
        lambda: signed(_deep_payload(5_000)),
        "maximum recursion depth exceeded while decoding a JSON array",
    ),
    # -- size caps (tuf's habit: every untrusted input has one) ---------------------------------
    Attack(
        "huge token (1 MiB)",
        lambda: signed(good(padding="x" * 1024 * 1024)),
        f"over the {MAX_TOKEN_LENGTH}-character cap",
    ),
    Attack(
        "huge token as bytes",
        lambda: signed(good(padding="x" * MAX_TOKEN_LENGTH)).encode(),
        f"over the {MAX_TOKEN_LENGTH}-byte cap",
    ),
    Attack(
        "huge claim (16 KiB)",
        lambda: signed(good(padding="x" * MAX_TOKEN_LENGTH)),
        f"over the {MAX_TOKEN_LENGTH}-character cap",
    ),
    # -- step 7: claims (missing, wrong type, empty) --------------------------------------------
    *[
        Attack(
            f"{name} missing",
            partial(_without, name),
            f"claim {name} is missing",
        )
        for name in ("productCode", "publicKeyVersion", "nonce", "iat")
    ],
    Attack(
        "publicKeyVersion as a string",
        lambda: signed(good(publicKeyVersion="1")),
        "publicKeyVersion is str",
    ),
    Attack(
        "publicKeyVersion as a float",
        lambda: signed(good(publicKeyVersion=1.0)),
        "publicKeyVersion is float",
    ),
    Attack(
        "publicKeyVersion as true",
        lambda: signed(good(publicKeyVersion=True)),
        "publicKeyVersion is bool",
    ),
    Attack(
        "publicKeyVersion null",
        lambda: signed(good(publicKeyVersion=None)),
        "publicKeyVersion is NoneType",
    ),
    Attack(
        "publicKeyVersion as a list",
        lambda: signed(good(publicKeyVersion=[1])),
        "publicKeyVersion is list",
    ),
    # pyjwt's own iat check (off) would take int() of these, or raise TypeError/OverflowError
    # (before 2.15): ours refuses each by type.
    Attack("iat as a float", lambda: signed(good(iat=float(NOW))), "claim iat is float"),
    Attack("iat as a list", lambda: signed(good(iat=[NOW])), "claim iat is list"),
    Attack("iat as true", lambda: signed(good(iat=True)), "claim iat is bool"),
    Attack("iat as a string", lambda: signed(good(iat=str(NOW))), "claim iat is str"),
    Attack(
        "iat 1e999 (infinity)",
        lambda: signed(json.dumps(good())[:-1].encode() + b',"Iat":1e999}'),
        "claim iat is float",
    ),
    Attack("nonce as a list", lambda: signed(good(nonce=[NONCE])), "claim nonce is list"),
    Attack(
        "nonce as an object", lambda: signed(good(nonce={"value": NONCE})), "claim nonce is dict"
    ),
    Attack("nonce as a number", lambda: signed(good(nonce=12345)), "claim nonce is int"),
    Attack("nonce empty", lambda: signed(good(nonce="")), "claim nonce is empty"),
    Attack("productCode empty", lambda: signed(good(productCode="")), "claim productCode is empty"),
    Attack(
        "productCode as a list (CVE-2024-53861 shape)",
        lambda: signed(good(productCode=[PRODUCT])),
        "productCode is list",
    ),
    # -- values that differ from the request ----------------------------------------------------
    Attack(
        "nonce differing in case",
        lambda: signed(good(nonce=NONCE.swapcase())),
        "replayed or foreign",
    ),
    Attack("nonce with a suffix", lambda: signed(good(nonce=NONCE + "x")), "replayed or foreign"),
    Attack(
        "nonce with a NUL suffix",
        lambda: signed(good(nonce=NONCE + "\u0000")),
        "replayed or foreign",
    ),
    Attack(
        "nonce prefix of the request's",
        lambda: signed(good(nonce=NONCE[:-1])),
        "replayed or foreign",
    ),
    Attack(
        "nonce containing the request's",
        lambda: signed(good(nonce=f"<{NONCE}>")),
        "replayed or foreign",
    ),
    Attack(
        "replay: right key, another request's nonce",
        lambda: signed(good(nonce="b" * 43)),
        "replayed or foreign",
    ),
    Attack(
        "Nonce (PascalCase) disagreeing",
        lambda: signed(good(Nonce="b" * 43)),
        "replayed or foreign",
    ),
    Attack(
        "productCode substring (CVE-2024-53861)",
        lambda: signed(good(productCode=PRODUCT[:-1])),
        "is 'prod-tes', but",
    ),
    Attack(
        "productCode superstring (CVE-2024-53861)",
        lambda: signed(good(productCode=f"x{PRODUCT}x")),
        "is 'xprod-testx', but",
    ),
    Attack(
        "productCode homoglyph (Cyrillic e)",
        lambda: signed(good(productCode="prod-t\u0435st")),
        "claim productCode is",
    ),
    Attack(
        "productCode of another trusted product",
        lambda: signed(good(productCode="prod-free")),
        "is 'prod-free', but",
    ),
    Attack(
        "ProductCode (PascalCase) of another product",
        lambda: signed(good(ProductCode="prod-free")),
        "is 'prod-free', but",
    ),
    Attack(
        "publicKeyVersion differing from the request",
        lambda: signed(good(publicKeyVersion=2)),
        "publicKeyVersion is 2, but the request named 1",
    ),
    Attack(
        "publicKeyVersion 0", lambda: signed(good(publicKeyVersion=0)), "publicKeyVersion is 0, but"
    ),
    Attack(
        "iat far in the future", lambda: signed(good(iat=NOW + 10 * 365 * 86400)), "in the future"
    ),
    Attack(
        "iat just past the leeway",
        lambda: signed(good(iat=NOW + 301)),
        "claim iat is 301s in the future",
    ),
    Attack("iat negative", lambda: signed(good(iat=-1)), "out of range"),
    Attack("iat beyond year 9999", lambda: signed(good(iat=253402300800)), "out of range"),
    Attack(
        "Iat (PascalCase) disagreeing",
        lambda: signed(good(Iat=NOW - 5)),
        "claims iat and Iat disagree",
    ),
    # -- swapping parts of valid tokens ----------------------------------------------------------
    Attack(
        "payload of one token, signature of another",
        lambda: with_segment(signed(), 1, signed(good(nonce="b" * 43)).split(".")[1]),
        "does not verify",
    ),
    Attack(
        "signature with its leading byte stripped",
        _strip_leading,
        "signature is 255 bytes",
    ),
    Attack(
        "signature with a leading zero byte added",
        _leading_zero,
        "signature is 257 bytes",
    ),
    Attack(
        "signature equal to the modulus",
        lambda: with_segment(signed(), 2, b64url(PUBLIC.public_numbers().n.to_bytes(256, "big"))),
        "does not verify",
    ),
    # -- keys the caller must never pass (UntrustedKeyError, exit 78) ---------------------------
    Attack(
        "verified with the jwt.io demo key",
        lambda: _with_key(serialization.load_pem_public_key(_demo_public_pem())),
        r"jwt\.io RS256 demo key",
        UntrustedKeyError,
    ),
    Attack(
        "verified with a 1024-bit key",
        lambda: _with_key(SMALL.public_key()),
        "1024-bit RSA key, under the 2048-bit minimum",
        UntrustedKeyError,
    ),
    Attack(
        "verified with a private key",
        lambda: _with_key(SIGNER),
        "is an RSA private key",
        UntrustedKeyError,
    ),
    Attack(
        "verified with PEM bytes instead of a key",
        lambda: _with_key(public_forms()["pem-spki"]),
        "is bytes, not an RSA public key",
        UntrustedKeyError,
    ),
    Attack(
        "verified with a JWK dict",
        lambda: _with_key(json.loads(public_forms()["jwk"])),
        "is dict, not an RSA public key",
        UntrustedKeyError,
    ),
    Attack(
        "verified with an EC key",
        lambda: _with_key(ec.generate_private_key(ec.SECP256R1()).public_key()),
        "not an RSA public key",
        UntrustedKeyError,
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_refused_with_its_reason(attack: Attack) -> None:
    made = attack.make()
    if isinstance(made, _WithKey):
        with pytest.raises(attack.error, match=attack.reason) as caught:
            verify(signed(), public_key=made.key)
    else:
        with pytest.raises(attack.error, match=attack.reason) as caught:
            verify(made)
    error = caught.value
    assert type(error) is attack.error  # not a subclass or a parent: the reason's own class
    expected = (
        ExitCode.CONFIGURATION if attack.error is UntrustedKeyError else ExitCode.BAD_SIGNATURE
    )
    assert error.exit_code == expected
    assert "\n" not in error.diagnosis()
    assert len(error.diagnosis()) < 600


def test_attack_names_are_unique() -> None:
    names = [a.name for a in ATTACKS]
    assert len(names) == len(set(names))


def test_the_genuine_token_verifies() -> None:
    """The control for the whole table: the same construction, unmodified, is accepted."""
    assert verify(signed()) is not None
    for header in (
        {"alg": "PS256"},
        {"alg": "PS256", "typ": "JWT"},
        {"alg": "PS256", "typ": "jwt"},
    ):
        assert verify(signed(header=header)) is not None


def test_attack_table_controls_use_the_trusted_key() -> None:
    """The HS256 and other-scheme cases really are signed with the trusted key's material, so
    their refusal is the algorithm pin at work, not a broken forgery."""
    token = other_scheme("RS256")
    head, body, sig = token.split(".")
    PUBLIC.verify(_decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    token = mint(SIGNER, good(), {"alg": "PS384"})  # a PS256 signature under a PS384 header
    with pytest.raises(VerificationError, match="alg is 'PS384'"):
        verify(token)


def test_jwt_io_demo_key_really_forges_without_the_denylist() -> None:
    """AWS's documentation key is compromised: a token forged with its published private key
    passes a plain RSASSA-PSS check. Only the denylist stands between it and a workload."""
    demo_public = JWT_IO_PRIVATE.public_key()
    assert spki_fingerprint(demo_public) == JWT_IO_DEMO_FINGERPRINT
    token = signed(key=JWT_IO_PRIVATE)
    head, body, sig = token.split(".")
    assert ps256_verifies(demo_public, f"{head}.{body}".encode(), _decode(sig))
    with pytest.raises(UntrustedKeyError, match=r"jwt\.io RS256 demo key"):
        verify(token, public_key=demo_public)


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = json.dumps(
            {"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER.public_key()))]}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""


@pytest.fixture
def key_server() -> Iterator[tuple[str, list[str]]]:
    """A real JWKS endpoint on loopback serving the attacker's key, recording every request."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("member", ["jku", "x5u", "kid"])
def test_key_urls_in_the_header_are_never_fetched(
    key_server: tuple[str, list[str]], member: str
) -> None:
    """RFC 8725 §2.8/§3.10 and pyjwt 2.13's jku SSRF: a token signed by the attacker, pointing at
    a live key server that would vouch for it, is refused, and the server sees no request."""
    url, hits = key_server
    assert _fetch(url)  # the server is reachable and answers
    assert hits == ["/probe"]
    hits.clear()
    token = signed(header={"alg": "PS256", member: f"{url}/jwks.json"}, key=ATTACKER)
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify(token)
    genuine = signed(header={"alg": "PS256", member: f"{url}/jwks.json"})
    assert verify(genuine) is not None  # ignored, not refused: the key comes from the version
    assert hits == []


def _fetch(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{url}/probe", timeout=5) as response:  # noqa: S310 - loopback test server
        data: bytes = response.read()
    return data


def test_a_token_near_the_cap_still_verifies() -> None:
    """The cap refuses floods, not answers: a genuine token just under 16 KiB is accepted."""
    token = signed(good(padding="x" * (MAX_TOKEN_LENGTH * 3 // 4 - 600)))
    assert MAX_TOKEN_LENGTH - 1000 < len(token) <= MAX_TOKEN_LENGTH
    assert verify(token) is not None


# -- the key loader: named bad-input assets (tests/assets/keys, rebuilt by make_assets.py) ----

KEY_ASSETS: dict[str, str | None] = {  # file -> reason the loader gives (None: accepted)
    "empty.pem": "is not PEM",
    "not-pem.pem": "is not PEM",
    "der-spki.pem": "is not PEM",
    "openssh.pem": "is not PEM",
    "private-pkcs8.pem": r"holds a private key \(PRIVATE KEY\)",
    "private-pkcs1.pem": r"holds a private key \(RSA PRIVATE KEY\)",
    "private-encrypted.pem": r"holds a private key \(ENCRYPTED PRIVATE KEY\)",
    "jwt-io-demo-private.pem": r"holds a private key \(RSA PRIVATE KEY\)",
    "certificate.pem": "holds a CERTIFICATE, not a PUBLIC KEY",
    "two-keys.pem": r"holds 2 PEM blocks \(PUBLIC KEY, PUBLIC KEY\)",
    "key-then-private.pem": r"holds 2 PEM blocks \(PUBLIC KEY, PRIVATE KEY\)",
    "garbage-in-armour.pem": "is not a valid PEM public key",
    "truncated.pem": "is not a valid PEM public key",
    "begin-without-end.pem": "is not a valid PEM public key",
    "bad-base64.pem": "is not a valid PEM public key",
    "nul-bytes.pem": "is not a valid PEM public key",
    "ec-p256.pem": "is ECPublicKey, not an RSA public key",
    "ed25519.pem": "is Ed25519PublicKey, not an RSA public key",
    "dsa-2048.pem": "is DSAPublicKey, not an RSA public key",
    "rsa-1024.pem": "is a 1024-bit RSA key, under the 2048-bit minimum",
    "rsa-2047.pem": "is a 2047-bit RSA key, under the 2048-bit minimum",
    "rsa-exponent-1.pem": "is not a valid PEM public key: e must be >= 3",
    "rsa-exponent-even.pem": "is not a valid PEM public key: e must be odd",
    "rsa-modulus-even.pem": "has an even RSA modulus",
    "rsa-modulus-negative.pem": "is not a valid PEM public key",
    "oversized.pem": "over the 65536-byte cap for a key file",
    "ok-crlf.pem": None,
    "ok-text-around.pem": None,
    "ok-pkcs1.pem": None,
    "ok-rsa-4096.pem": None,
}


def test_every_key_asset_is_described() -> None:
    assert sorted(p.name for p in ASSETS.glob("*.pem")) == sorted(KEY_ASSETS)


@pytest.mark.parametrize(("name", "reason"), sorted(KEY_ASSETS.items()))
def test_key_asset(name: str, reason: str | None) -> None:
    data = (ASSETS / name).read_bytes()
    if reason is None:
        key = load_public_key_pem(data, where=name)
        assert key.key_size >= 2048
        return
    with pytest.raises(UntrustedKeyError, match=f"^{re.escape(name)} .*{reason}") as caught:
        load_public_key_pem(data, where=name)
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.exit_code == ExitCode.CONFIGURATION


# -- hostile input on which pyjwt raises something other than its own errors ---------------------
# Observed on pyjwt 2.13.0 (the floor), 2.14.0 and 2.15.1 (the lock) with jwt.decode(token, key,
# algorithms=["PS256"]) and its default options. Each must come out of verify_signature as a
# VerificationError whose reason says what was wrong.


@dataclass(frozen=True)
class RawPyjwtFailure:
    name: str
    make: Callable[[], str]
    raw: tuple[type[BaseException], ...]  # what jwt.decode itself raises, across the range
    reason: str


def _surrogate() -> str:
    head, body, sig = signed().split(".")
    return f"{head[:5]}\ud800{head[5:]}.{body}.{sig}"


PYJWT_RAISES = [
    RawPyjwtFailure(
        "lone surrogate in a str token (UnicodeEncodeError)",
        _surrogate,
        (UnicodeEncodeError,),
        "header segment has characters outside unpadded base64url",  # ours, before pyjwt
    ),
    RawPyjwtFailure(
        "header nested 5,000 deep (RecursionError before 2.14)",
        lambda: signed(header=_deep(5_000)),
        (RecursionError, jwt.DecodeError),
        "maximum recursion depth exceeded",
    ),
    RawPyjwtFailure(
        "payload nested 5,000 deep (RecursionError before 2.15)",
        lambda: signed(_deep_payload(5_000)),
        (RecursionError, jwt.DecodeError),
        "maximum recursion depth exceeded while decoding a JSON array",
    ),
    RawPyjwtFailure(
        "iat as a list (TypeError in the iat check before 2.15)",
        lambda: signed(good(iat=[NOW])),
        (TypeError, jwt.InvalidIssuedAtError),
        "claim iat is list, not an integer NumericDate",
    ),
    RawPyjwtFailure(
        "iat 1e999 (OverflowError in the iat check before 2.15)",
        lambda: signed(
            json.dumps({k: v for k, v in good().items() if k != "iat"})[:-1].encode()
            + b',"iat":1e999}'
        ),
        (OverflowError, jwt.InvalidIssuedAtError),
        "claim iat is float, not an integer NumericDate",
    ),
]


@pytest.mark.parametrize("case", PYJWT_RAISES, ids=[c.name for c in PYJWT_RAISES])
def test_what_pyjwt_raises_raw_comes_out_as_a_reason(case: RawPyjwtFailure) -> None:
    token = case.make()
    with pytest.raises(case.raw):
        jwt.decode(token, PUBLIC, algorithms=["PS256"])
    with pytest.raises(VerificationError, match=case.reason) as caught:
        verify(token)
    assert type(caught.value) is VerificationError
    assert "\n" not in caught.value.diagnosis()
