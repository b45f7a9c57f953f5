"""Verify cost in instructions, deterministic: callgrind counts what each path executes,
whatever else the machine is doing (valgrind is on every machine here; the figure is skipped
without it). Per call = (count with N calls - count with none) / N, for each path, in one run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_PROGRAM = """
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from entrypoint import verify_signature
from entrypoint.emulator.tokens import TokenSigner
pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
sha256 = hashes.SHA256()
key = serialization.load_pem_private_key(open(sys.argv[3], "rb").read(), None)
signer = TokenSigner(lambda *_: key)
now = 1790000000
claims = {"productCode": "p", "publicKeyVersion": 1, "nonce": "n" * 43, "iat": now}
token = signer.sign(claims, "p", 1)
public = key.public_key()
header, payload, sig = token.split(".")
signature = base64.urlsafe_b64decode(sig + "==")
message = f"{header}.{payload}".encode()
for _ in range(int(sys.argv[2])):
    if sys.argv[1] == "ours":
        verify_signature(token, product_code="p", public_key_version=1, nonce="n" * 43,
                         public_key=public, now=now)
    else:
        public.verify(signature, message, pss, sha256)
"""


def _count(mode: str, calls: int, key: Path) -> int:
    run = subprocess.run(
        [
            shutil.which("valgrind") or "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            _PROGRAM,
            mode,
            str(calls),
            str(key),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", run.stderr)
    if match is None:
        raise RuntimeError(run.stderr[-300:])
    return int(match.group(1))


def measure(calls: int = 500) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        per_call = {
            mode: (_count(mode, calls, key) - _count(mode, 0, key)) / calls
            for mode in ("floor", "ours")
        }
    return {
        "instructions_per_call": per_call,
        "ratio": per_call["ours"] / per_call["floor"],
        "targets": {"ratio": 3.0},
    }
