"""Shared measurement helpers: medians with spread, and the environment of a benchmarked task."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entrypoint.emulator import (
    EMULATOR_ACCESS_KEY_ID,
    EMULATOR_SECRET_ACCESS_KEY,
    Emulator,
)

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Figure:
    """A median over repeated runs with its spread (interquartile range)."""

    median: float
    p25: float
    p75: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        ordered = sorted(values)
        quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
        return cls(statistics.median(ordered), quartiles[0], quartiles[2], len(ordered))

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "p25": self.p25, "p75": self.p75, "runs": self.runs}


def task_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    """A task pointed at the emulator, isolated from this machine's AWS configuration."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "AWS_REGION": emulator.region,
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": emulator.url,
        "AWS_ACCESS_KEY_ID": EMULATOR_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": EMULATOR_SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


# Forks the measured command from a small interpreter: wait4's ru_maxrss of a child also counts
# the pages it shared with its parent before exec, so a child of this (large) process would carry
# the benchmark's own size into every figure. The launcher times fork to exit as well.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_measured(command: Sequence[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run ``command`` to its end: (wall seconds, exit status, peak RSS in KiB of the process,
    which after exec is the bootstrap's peak: the workload here is /bin/true)."""
    import shutil
    import sys

    program = command[0] if "/" in command[0] else shutil.which(command[0]) or command[0]
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, program, *command[1:]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        seconds, status, peak = run.stdout.split()
    except ValueError:
        raise RuntimeError(f"{command[0]} could not be measured: {run.stderr[-500:]}") from None
    if int(status) != 0:
        raise RuntimeError(f"{command[0]} failed ({status}): {run.stderr[-500:]}")
    return float(seconds), int(status), int(peak)
