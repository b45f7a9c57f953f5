"""A cluster start, simulated: hundreds of real bootstraps against one throttling emulator.

Every bootstrap is the real console script in its own process, with its own credentials (so the
emulator's records say which process made which call), racing the others for a token bucket that
answers ThrottlingException above ``rate`` requests a second. `run_fleet` returns the numbers a
capacity planner and a security reviewer want: did every entitled task start within its
deadline, did no unentitled one, how many requests each registration cost (retry amplification),
how start delays spread, and whether the service's records match what the processes say they
did (nothing lost, nothing counted twice).

    .venv/bin/python -m tests.fleet --entitled 300 --unentitled 60 --rate 25   # a benchmark
    tests/test_fleet.py                                                        # the CI check

Issue 7's ``make bench`` can call `run_fleet` directly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from entrypoint.emulator import (
    EMULATOR_SECRET_ACCESS_KEY,
    Emulator,
    Outcome,
    Principal,
    ProductBehavior,
)
from entrypoint.emulator.tokens import generate_key

from .support import CONSOLE_SCRIPT, base_env

__all__ = ["FleetReport", "run_fleet"]

PAID = "prod-fleet-paid"
UNPAID = "prod-fleet-unpaid"


@dataclass
class FleetReport:
    """What happened. ``problems`` lists every broken promise; empty means the fleet was fine."""

    entitled: int
    unentitled: int
    rate: float
    burst: float
    deadline: float
    base_delay: float
    max_delay: float
    started: int = 0  # entitled bootstraps that exec'd the workload
    refused: int = 0  # unentitled bootstraps that exited 77
    requests: int = 0  # RegisterUsage requests the emulator answered
    throttled: int = 0
    registrations: int = 0  # successful (200) RegisterUsage answers
    amplification: float = 0.0  # entitled requests per registration (1.0: no retries at all)
    attempts_max: int = 0  # most attempts any one entitled bootstrap needed
    start_delay: dict[str, float] = field(default_factory=dict)  # seconds, spawn to registration
    wall_seconds: float = 0.0
    exit_codes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        delays = self.start_delay
        return (
            f"{self.entitled} entitled + {self.unentitled} unentitled bootstraps, limit "
            f"{self.rate:g}/s (burst {self.burst:g}), backoff {self.base_delay:g}.."
            f"{self.max_delay:g}s full jitter: {self.started} started, {self.refused} refused "
            "(77); "
            f"{self.requests} requests ({self.throttled} throttled) for {self.registrations} "
            f"registrations: amplification {self.amplification:.2f} requests/registration "
            f"(max {self.attempts_max} attempts); start delay p50 {delays.get('p50', 0):.1f}s "
            f"p90 {delays.get('p90', 0):.1f}s max {delays.get('max', 0):.1f}s; "
            f"wall {self.wall_seconds:.1f}s; problems: {len(self.problems)}"
        )


@dataclass
class _Member:
    index: int
    entitled: bool
    akid: str
    process: subprocess.Popen[bytes]
    log: Path
    spawned: float  # wall clock (time.time), comparable with the emulator's record times


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else []
    pick = (lambda q: cuts[q - 1]) if cuts else (lambda _q: ordered[0])
    return {
        "min": ordered[0],
        "p50": pick(50),
        "p90": pick(90),
        "p99": pick(99),
        "max": ordered[-1],
        "spread": ordered[-1] - ordered[0],
    }


def _events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": "unparsed", "message": line})
    return events


def run_fleet(
    *,
    entitled: int = 160,
    unentitled: int = 40,
    rate: float = 25.0,
    burst: float = 10.0,
    deadline: float = 120.0,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    workdir: Path | None = None,
) -> FleetReport:
    """Start ``entitled + unentitled`` bootstraps at once against one rate-limited emulator and
    wait for all of them (each is bounded by its own ``deadline``)."""
    report = FleetReport(entitled, unentitled, rate, burst, deadline, base_delay, max_delay)
    with tempfile.TemporaryDirectory(prefix="fleet-", dir=workdir) as tmp:
        root = Path(tmp)
        products = {PAID: ProductBehavior(), UNPAID: ProductBehavior(outcome=Outcome.NOT_ENTITLED)}
        keys: dict[tuple[str, int], Any] = {}

        def key_factory(code: str, version: int) -> Any:
            return keys.setdefault((code, version), generate_key())

        with Emulator(products=products, key_factory=key_factory) as emulator:
            keys_dir = emulator.write_keys(root / "keys")
            emulator.faults.rate_limit(rate, burst)
            members = []
            started_at = time.monotonic()
            for index in range(entitled + unentitled):
                is_entitled = index < entitled
                akid = f"AKIAFLEET{index:011d}"
                # The emulator checks SigV4: each task's own key pair, known to the service.
                emulator.add_principal(Principal(akid, EMULATOR_SECRET_ACCESS_KEY))
                log = root / f"{index}.log"
                env = base_env(
                    emulator,
                    AWS_ACCESS_KEY_ID=akid,
                    MARKETPLACE_PRODUCT_CODE=PAID if is_entitled else UNPAID,
                    MARKETPLACE_LOG_FORMAT="json",
                    MARKETPLACE_RETRY_DEADLINE=str(deadline),
                    MARKETPLACE_RETRY_BASE_DELAY=str(base_delay),
                    MARKETPLACE_RETRY_MAX_DELAY=str(max_delay),
                )
                with log.open("wb") as stderr:
                    process = subprocess.Popen(
                        [str(CONSOLE_SCRIPT), "--keys-dir", str(keys_dir), "--", "true"],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                members.append(_Member(index, is_entitled, akid, process, log, time.time()))
            codes: Counter[int] = Counter()
            for member in members:
                try:
                    member.process.wait(timeout=deadline + 120)
                except subprocess.TimeoutExpired:
                    member.process.kill()
                    member.process.wait()
                    report.problems.append(f"bootstrap {member.index} outlived its deadline")
                codes[member.process.returncode] += 1
            report.wall_seconds = time.monotonic() - started_at
            records = emulator.calls("RegisterUsage")
        _account(report, members, records, codes)
    return report


def _account(
    report: FleetReport, members: list[_Member], records: list[Any], codes: Counter[int]
) -> None:
    """Compare what each process says it did with what the service recorded."""
    by_key: dict[str | None, list[Any]] = defaultdict(list)
    for record in records:
        by_key[record.access_key_id].append(record)
    report.requests = len(records)
    report.throttled = sum(1 for r in records if r.error == "ThrottlingException")
    report.registrations = sum(1 for r in records if r.status == 200)
    report.exit_codes = {str(code): count for code, count in sorted(codes.items())}
    delays: list[float] = []
    entitled_requests = 0
    for member in members:
        mine = by_key.pop(member.akid, [])
        if member.entitled:
            entitled_requests += len(mine)
            report.attempts_max = max(report.attempts_max, len(mine))
        delay = _check_member(report, member, mine)
        if delay is not None:
            delays.append(delay)
    for akid, extra in by_key.items():
        report.problems.append(f"{len(extra)} requests from unknown caller {akid}")
    report.amplification = entitled_requests / report.registrations if report.registrations else 0
    report.start_delay = {k: round(v, 3) for k, v in _quantiles(delays).items()}


def _check_member(report: FleetReport, member: _Member, mine: list[Any]) -> float | None:
    """One bootstrap's promises; returns its start delay if it started."""
    names = [e.get("event") for e in _events(member.log)]
    retries = names.count("register_usage_retry")
    wins = [r for r in mine if r.status == 200]
    code = member.process.returncode
    where = f"bootstrap {member.index} ({'entitled' if member.entitled else 'unentitled'})"
    problems = report.problems
    if len(mine) != retries + 1:  # every attempt it logged reached the service, once
        problems.append(f"{where}: logged {retries + 1} attempts, service saw {len(mine)}")
    if len({r.nonce for r in mine}) != len(mine):
        problems.append(f"{where}: a nonce was reused")
    if not member.entitled:
        report.refused += code == 77
        if code != 77 or wins or "entitlement_verified" in names:
            problems.append(f"{where}: exit {code}, {len(wins)} registrations, events {names}")
        return None
    if code != 0 or "entitlement_verified" not in names:
        problems.append(f"{where}: exit {code}, events {names[-2:]}")
        return None
    report.started += 1
    if len(wins) != 1 or mine[-1].status != 200:
        problems.append(f"{where}: {len(wins)} registrations recorded")
        return None
    delay = float(wins[0].time - member.spawned)
    if delay > report.deadline:
        problems.append(f"{where}: registered {delay:.1f}s after start")
    return delay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entitled", type=int, default=160)
    parser.add_argument("--unentitled", type=int, default=40)
    parser.add_argument("--rate", type=float, default=25.0, help="requests/s before throttling")
    parser.add_argument("--burst", type=float, default=10.0)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--base-delay", type=float, default=0.5)
    parser.add_argument("--max-delay", type=float, default=8.0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = run_fleet(
        entitled=args.entitled,
        unentitled=args.unentitled,
        rate=args.rate,
        burst=args.burst,
        deadline=args.deadline,
        base_delay=args.base_delay,
        max_delay=args.max_delay,
    )
    print(json.dumps(asdict(report), indent=2) if args.json else report.summary())
    raise SystemExit(1 if report.problems else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
