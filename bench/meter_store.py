"""Durable adds per second and add latency: the task's SQLite usage store against the JSON state
file it replaced, in the same run.

Ours: `Meter.add` (the public API: validation, then one SQLite transaction in the process's own
shard of the store) from 1 process and from 8 processes on one store, closed loop (as fast as
they go), then 8 processes paced to the target rate (30,000 adds/s together), where latency is
what a busy service sees.
Each worker's `Meter` runs its background sender, as in production: one of them holds the
task's lease and folds the WAL back every half second.
Durable against process death (``synchronous=NORMAL`` in WAL mode); the stricter ``machine``
durability (an fsync per add) from 1 process is context.

Baseline: the JSON state file of entrypoint/meter/store.py before the store (commit 765cd51), as
`bench.baseline_json_meter` reproduces its durable save (the whole book as JSON, a temporary
file, fsync, rename, fsync of the directory): from 1 thread and from 8 threads of one process,
the only way that design could share a file (a second process was refused).

Context for the design: the same 8 paced processes adding to the store itself, under its one
lock (``meter add``'s path), instead of each to a shard of its own: what a shared lock costs when
its holder can be descheduled.

Also ``meter add`` as a command, per call, against ``python -c pass``: what a program in another
language pays per batch of requests.

Each worker is a process of its own, started and warmed up before a common start, and reports
its adds' latencies (perf_counter around each call).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import REPO

PRODUCT = "prod-bench"
TARGET_RATE = 30_000.0

_WORKER = """
import json, sys, time
from entrypoint.meter import Meter
from entrypoint.meter.opening import open_store
store, count, rate, durability = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
shared = len(sys.argv) > 5  # no shard: every add under the store's one lock (meter add's path)
meter = Meter(product_code="prod-bench", dimensions=["requests", "bytes"], state_file=store,
    client=object(), durability=None if durability == "-" else durability)
meter.start(preflight=False)  # with its sender thread: one of the workers holds the lease
if shared:
    direct = open_store(store, product_code="prod-bench")
    meter.add = lambda d, q: direct.add(d, q * 1_000_000, int(time.time()) // 3600 * 3600)
for _ in range(200):
    meter.add("bytes", 1)  # warm-up: statements prepared, pages cached
print("ready", flush=True)
sys.stdin.readline()  # the common start
clock, latencies = time.perf_counter, []
add, due = meter.add, clock()
start = due
for _ in range(count):
    if rate:
        due += 1.0 / rate
        wait = due - clock()
        if wait > 0.001:  # ahead by a millisecond: wait (a wake-up per add would cost more)
            time.sleep(wait)
    began = clock()
    add("requests", 1)
    latencies.append(clock() - began)
print(json.dumps({"seconds": clock() - start, "latencies": latencies}))
"""


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(latencies: list[float], seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "adds": len(ordered),
        "adds_per_second": len(ordered) / seconds,
        "p50_us": _percentile(ordered, 0.50) * 1e6,
        "p99_us": _percentile(ordered, 0.99) * 1e6,
        "p999_us": _percentile(ordered, 0.999) * 1e6,
        "max_us": ordered[-1] * 1e6,
    }


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _processes(
    store: Path,
    processes: int,
    count: int,
    rate: float = 0.0,
    durability: str = "-",
    *,
    shared: bool = False,
) -> dict[str, Any]:
    """``processes`` workers on ``store``, each adding to its own shard (or, ``shared``, all
    to the store under its one lock)."""
    extra = ["shared"] if shared else []
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(store), str(count), str(rate), durability, *extra],
            cwd=REPO,
            env=_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        if worker.stdout is None or worker.stdout.readline().strip() != "ready":
            raise RuntimeError("a meter benchmark worker did not start")
    for worker in workers:
        if worker.stdin is not None:
            worker.stdin.write("go\n")
            worker.stdin.flush()
    latencies: list[float] = []
    seconds = 0.0
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        result = json.loads(out)
        latencies.extend(result["latencies"])
        seconds = max(seconds, result["seconds"])  # the slowest worker's loop, start to end
    if any(worker.returncode for worker in workers):
        raise RuntimeError("a meter benchmark worker failed")
    return {"processes": processes, "rate": rate, **_summary(latencies, seconds)}


def _baseline(directory: Path, threads: int, count: int) -> dict[str, Any]:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.baseline_json_meter",
            str(directory),
            str(threads),
            str(count),
        ],
        cwd=REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result = json.loads(run.stdout)
    return {"threads": threads, **_summary(result["latencies"], result["seconds"])}


def _command(store: Path, rounds: int) -> dict[str, Any]:
    """``meter add`` per call, against the interpreter's own start."""
    env = {
        **_environment(),
        "MARKETPLACE_PRODUCT_CODE": PRODUCT,
        "MARKETPLACE_METER_STORE": str(store),
        "MARKETPLACE_METER_DIMENSIONS": "requests,bytes",
    }
    script = shutil.which("marketplace-entrypoint", path=str(Path(sys.executable).parent))
    command = [script or "marketplace-entrypoint", "meter", "add", "--dimension", "bytes"]
    ours, floor = [], []
    for n in range(rounds + 2):
        began = time.perf_counter()
        subprocess.run([*command, "--quantity", "1"], env=env, check=True, capture_output=True)
        middle = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        if n >= 2:  # warm-up: bytecode compiled into the cache, files in the page cache
            ours.append(middle - began)
            floor.append(time.perf_counter() - middle)
    return {
        "meter_add_ms": statistics.median(ours) * 1e3,
        "python_floor_ms": statistics.median(floor) * 1e3,
    }


def measure(
    *, count: int = 40_000, baseline_count: int = 2_000, rounds: int = 20
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-meter-") as tmp:
        root = Path(tmp)

        def fresh(name: str) -> Path:
            (root / name).mkdir()
            return root / name / "usage.db"

        one = _processes(fresh("one"), 1, count)
        eight = _processes(fresh("eight"), 8, count // 2)
        paced = _processes(fresh("paced"), 8, count // 4, rate=TARGET_RATE / 8)
        shared = _processes(fresh("shared"), 8, count // 4, rate=TARGET_RATE / 8, shared=True)
        machine = _processes(fresh("machine"), 1, max(200, count // 100), durability="machine")
        (root / "json1").mkdir()
        (root / "json8").mkdir()
        json_one = _baseline(root / "json1", 1, baseline_count)
        json_eight = _baseline(root / "json8", 8, baseline_count // 4)
        command = _command(fresh("command"), rounds)
    return {
        "ours": {
            "one": one,
            "eight": eight,
            "eight_paced": paced,
            "eight_paced_shared": shared,
            "one_machine": machine,
        },
        "baseline": {"one": json_one, "eight_threads": json_eight},
        "ratios": {
            "one": one["adds_per_second"] / json_one["adds_per_second"],
            "eight": eight["adds_per_second"] / json_eight["adds_per_second"],
        },
        "command": command,
    }


if __name__ == "__main__":
    print(json.dumps(measure(count=int(sys.argv[1]) if len(sys.argv) > 1 else 40_000), indent=1))
