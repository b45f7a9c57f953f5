"""One load-generating process: T threads, each sending SigV4-signed RegisterUsage calls over a
keep-alive connection for D seconds. Prints one JSON line: count, errors, latencies (ms).

Usage: python -m bench.load_client URL THREADS SECONDS
"""

from __future__ import annotations

import http.client
import json
import secrets
import sys
import threading
import time
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY

PRODUCT = "prod-load"
# botocore's own signer, as any SDK client would sign (the emulator checks it the same way).
SIGNER = SigV4Auth(
    Credentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY), "aws-marketplace", "us-east-1"
)


def worker(url: str, until: float, latencies: list[float], errors: list[str]) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    while time.perf_counter() < until:
        body = json.dumps(
            {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": secrets.token_urlsafe(32)}
        ).encode()
        request = AWSRequest(
            method="POST",
            url=url + "/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSMPMeteringService.RegisterUsage",
            },
        )
        SIGNER.add_auth(request)
        headers = dict(request.headers.items())
        started = time.perf_counter()
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)
            connection.close()
            connection = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port, timeout=30
            )
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or b"Signature" not in payload:
            errors.append(f"HTTP {response.status}")
    connection.close()


def main() -> None:
    url, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    until = time.perf_counter() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    pool = [
        threading.Thread(target=worker, args=(url, until, latencies, errors))
        for _ in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(json.dumps({"latencies": latencies, "errors": errors}))


if __name__ == "__main__":
    main()
