"""Fleet: a cluster start of real bootstraps against one throttling emulator (tests/fleet.py,
issue 3): retry amplification (requests per registration) and the spread of start delays."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tests.fleet import run_fleet


def measure(entitled: int = 160, unentitled: int = 40, rate: float = 5.0) -> dict[str, Any]:
    report = run_fleet(
        entitled=entitled, unentitled=unentitled, rate=rate, burst=rate, deadline=300
    )
    data = asdict(report)
    return {
        "summary": report.summary(),
        "amplification": report.amplification,
        "start_delay_seconds": report.start_delay,
        "started": report.started,
        "refused": report.refused,
        "problems": data.get("problems", []),
    }
