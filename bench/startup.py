"""Start-up overhead: process start to the workload, ours against the baseline, same run.

Both run against the emulator on loopback and exec ``/bin/true``, interleaved round by round so
that machine noise hits both alike. Reported: wall time and peak RSS (the process's maximum,
which is the bootstrap's: /bin/true is tiny), medians with spread, and ours/baseline ratios.
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
                "entrypoint": [str(console), "--keys-dir", str(keys), "--", "/bin/true"],
                "entrypoint_botocore": [str(console), "--keys-dir", str(keys), "--", "/bin/true"],
            }
            envs = dict.fromkeys(commands, env)
            envs["entrypoint_botocore"] = {**env, "MARKETPLACE_AWS_CLIENT": "botocore"}
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
    base_wall = figures["baseline"]["wall_ms"].median
    base_rss = figures["baseline"]["rss_mb"].median
    return {
        "figures": {k: {m: f.as_dict() for m, f in v.items()} for k, v in figures.items()},
        "ratios": {
            "wall": figures["entrypoint"]["wall_ms"].median / base_wall,
            "rss": figures["entrypoint"]["rss_mb"].median / base_rss,
            "wall_botocore_path": figures["entrypoint_botocore"]["wall_ms"].median / base_wall,
            "rss_botocore_path": figures["entrypoint_botocore"]["rss_mb"].median / base_rss,
        },
        "targets": {"wall": 0.6, "rss": 0.8},
    }
