"""The floor of any botocore-based bootstrap: create the client, call RegisterUsage, exec.

No keys, no verification, no retries, no Region chain: botocore's import, its client creation
and one signed call are what every bootstrap built on botocore pays, so ours is measured against
this. Usage: bare_botocore.py PRODUCT -- WORKLOAD...
"""

import os
import secrets
import sys

import botocore.session

product = sys.argv[1]
workload = sys.argv[sys.argv.index("--") + 1 :]
client = botocore.session.get_session().create_client(
    "meteringmarketplace", region_name=os.environ["AWS_REGION"]
)
client.register_usage(  # type: ignore[attr-defined]  # botocore builds its methods at run time
    ProductCode=product, PublicKeyVersion=1, Nonce=secrets.token_urlsafe(32)
)
os.execvp(workload[0], workload)  # noqa: S606
