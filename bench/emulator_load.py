"""Emulator throughput: SigV4-signed RegisterUsage answers per second and latency at 1, 16 and
64 concurrent clients, with zero errors required.

The emulator runs as its own process (the ``marketplace-entrypoint emulator`` command), the
clients in others, so the numbers are the emulator's, sharing the machine with its load as a
test suite would. Each answer is a real one: SigV4 checked with botocore's signer, a fresh PS256
token signed for the request's nonce.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .load_client import PRODUCT

REPO = Path(__file__).resolve().parent.parent


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    processes = max(1, min(clients, 4))
    per_process = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.load_client", url, str(threads), str(seconds)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for threads in per_process
    ]
    latencies: list[float] = []
    errors: list[str] = []
    for runner in runners:
        out, _ = runner.communicate(timeout=seconds + 120)
        result = json.loads(out)
        latencies.extend(result["latencies"])
        errors.extend(result["errors"])
    ok = len(latencies) - len(errors)
    return {
        "clients": clients,
        "answers_per_second": ok / seconds,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": _percentile(latencies, 0.99) if latencies else None,
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
    }


def measure(seconds: float = 8.0, levels: tuple[int, ...] = (1, 16, 64)) -> dict[str, Any]:
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("marketplace-entrypoint")),
            "emulator",
            "--port",
            "0",
            "--product",
            PRODUCT,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        if server.stdout is None:  # pragma: no cover - stdout=PIPE above
            raise RuntimeError("no stdout from the emulator")
        url = server.stdout.readline().split()[4]
        time.sleep(0.5)
        results = [_load(url, clients, seconds) for clients in levels]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    top = results[-1]
    return {
        "levels": results,
        "targets": {"answers_per_second_at_64": 200, "p99_ms_at_64": 250},
        "met": top["answers_per_second"] >= 200
        and (top["p99_ms"] or 1e9) <= 250
        and all(r["errors"] == 0 for r in results),
    }
