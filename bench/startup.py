"""Start-up overhead: process start to the workload, ours against two baselines, same run.

All run against the emulator on loopback and exec ``/bin/true``, interleaved round by round so
that machine noise hits all alike. The baselines: a bare botocore script that only creates the
client, calls RegisterUsage and execs (``bare_botocore.py``: the floor of any botocore-based
bootstrap), the same plus pyjwt's verification (``bare_verified.py``: the floor of any
bootstrap that verifies, context) and what AWS's sample does in Python (``baseline_register.py``:
boto3 + pyjwt).
Reported: wall time and peak RSS (the process's maximum, which is the bootstrap's: /bin/true is
tiny), medians with spread, and the ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from entrypoint.emulator import Emulator, ProductBehavior

from .common import Figure, run_measured, task_env

PRODUCT = "prod-bench"
HERE = Path(__file__).resolve().parent


def measure(rounds: int = 30, warmup: int = 3) -> dict[str, Any]:
    console = Path(sys.executable).with_name("marketplace-entrypoint")
    with Emulator(products={PRODUCT: ProductBehavior()}) as emulator:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            keys = emulator.write_keys(Path(tmp) / "keys")
            env = task_env(emulator)
            commands = {
                "python_floor": [sys.executable, "-c", "pass"],
                "baseline": [
                    sys.executable,
                    str(HERE / "baseline_register.py"),
                    str(keys / PRODUCT / "v1.pem"),
                    PRODUCT,
                    "--",
                    "/bin/true",
                ],
                "bare_botocore": [
                    sys.executable,
                    str(HERE / "bare_botocore.py"),
                    PRODUCT,
                    "--",
                    "/bin/true",
                ],
                "bare_verified": [
                    sys.executable,
                    str(HERE / "bare_verified.py"),
                    str(keys / PRODUCT / "v1.pem"),
                    PRODUCT,
                    "--",
                    "/bin/true",
                ],
                "entrypoint": [str(console), "--keys-dir", str(keys), "--", "/bin/true"],
            }
            envs = dict.fromkeys(commands, env)
            wall: dict[str, list[float]] = {name: [] for name in commands}
            rss: dict[str, list[float]] = {name: [] for name in commands}
            for round_ in range(warmup + rounds):
                for name, command in commands.items():
                    seconds, _, peak = run_measured(command, envs[name])
                    if round_ >= warmup:
                        wall[name].append(seconds * 1000)
                        rss[name].append(peak / 1024)
    figures = {
        name: {"wall_ms": Figure.of(wall[name]), "rss_mb": Figure.of(rss[name])}
        for name in commands
    }
    ours_wall = figures["entrypoint"]["wall_ms"].median
    ours_rss = figures["entrypoint"]["rss_mb"].median
    floor_wall = figures["bare_botocore"]["wall_ms"].median
    verified_wall = figures["bare_verified"]["wall_ms"].median
    return {
        "figures": {k: {m: f.as_dict() for m, f in v.items()} for k, v in figures.items()},
        "ratios": {
            "wall": ours_wall / figures["baseline"]["wall_ms"].median,
            "rss": ours_rss / figures["baseline"]["rss_mb"].median,
            "wall_floor": ours_wall / floor_wall,
            "rss_floor": ours_rss / figures["bare_botocore"]["rss_mb"].median,
            "wall_verified_floor": ours_wall / verified_wall,
            "verified_floor_over_floor": verified_wall / floor_wall,
        },
        # Issue 10: at most 1.1x the bare-botocore floor, at most 0.85x the AWS-sample baseline.
        "targets": {"wall": 0.85, "wall_floor": 1.1},
    }
