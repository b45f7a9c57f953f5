"""The obvious alternative, as a baseline: what AWS's RegisterUsage sample does, in Python.

Import boto3 and pyjwt, create the client, call RegisterUsage with a nonce, ``jwt.decode`` the
Signature (PS256) with the public key, check productCode, nonce and publicKeyVersion as AWS's Java
sample does, then exec the workload. No retries, no iat check, no key checks: the least a seller
would write. Usage: baseline_register.py KEYFILE PRODUCT -- WORKLOAD...
"""

import os
import secrets
import sys
from pathlib import Path

import boto3
import jwt
from cryptography.hazmat.primitives import serialization

key_file, product = sys.argv[1], sys.argv[2]
workload = sys.argv[sys.argv.index("--") + 1 :]
client = boto3.client("meteringmarketplace", region_name=os.environ["AWS_REGION"])
nonce = secrets.token_urlsafe(32)
answer = client.register_usage(ProductCode=product, PublicKeyVersion=1, Nonce=nonce)
key = serialization.load_pem_public_key(Path(key_file).read_bytes())
claims = jwt.decode(answer["Signature"], key, algorithms=["PS256"])  # type: ignore[arg-type]
if claims["productCode"] != product or claims["nonce"] != nonce or claims["publicKeyVersion"] != 1:
    sys.exit(65)
os.execvp(workload[0], workload)  # noqa: S606
