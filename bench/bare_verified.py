"""The floor of any bootstrap that verifies: `bare_botocore.py` plus pyjwt's verification.

botocore's import, its client and one signed RegisterUsage call, then what the answer needs to
be trusted at all: pyjwt and cryptography imported, the public key loaded, ``jwt.decode`` with
PS256 and the nonce compared. No key checks, no retries, no Region chain, no exit codes: what
`bare_botocore.py` leaves out is the cost of verifying, and what ours adds over this script is
the cost of everything else it does. Usage: bare_verified.py KEYFILE PRODUCT -- WORKLOAD...
"""

import hmac
import os
import secrets
import sys
from pathlib import Path

import botocore.session
import jwt
from cryptography.hazmat.primitives import serialization

key_file, product = sys.argv[1], sys.argv[2]
workload = sys.argv[sys.argv.index("--") + 1 :]
key = serialization.load_pem_public_key(Path(key_file).read_bytes())
nonce = secrets.token_urlsafe(32)
client = botocore.session.get_session().create_client(
    "meteringmarketplace", region_name=os.environ["AWS_REGION"]
)
answer = client.register_usage(  # type: ignore[attr-defined]  # botocore builds its methods at run time
    ProductCode=product, PublicKeyVersion=1, Nonce=nonce
)
claims = jwt.decode(answer["Signature"], key, algorithms=["PS256"])  # type: ignore[arg-type]
if not hmac.compare_digest(str(claims.get("nonce")), nonce):
    sys.exit(65)
os.execvp(workload[0], workload)  # noqa: S606
