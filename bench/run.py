"""``make bench``: every benchmark of issue 7, one table, one JSON file.

    .venv/bin/python -m bench.run              # everything (about 10 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick      # fewer rounds, small fleet (about 3 minutes)
    .venv/bin/python -m bench.run --only startup,verify

Every comparison is a ratio measured in the same run, against a baseline run interleaved with
ours: machines here are shared and noisy, so absolute times are context, ratios are the claim.
Results go to ``bench/results/latest.json`` (and the table to stdout); bench/RESULTS.md records
a run with its machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import REPO, machine

RESULTS = REPO / "bench" / "results"


def _row(  # noqa: PLR0917 - one table row, its cells in order
    name: str,
    ours: str,
    baseline: str,
    ratio: float | None,
    target: str,
    met: bool | None,  # noqa: FBT001 - a cell: met, not met, or not applicable
) -> str:
    shown = "" if ratio is None else f"{ratio:.2f}x"
    verdict = "" if met is None else ("met" if met else "NOT met")
    return f"| {name} | {ours} | {baseline} | {shown} | {target} | {verdict} |"


def table(results: dict[str, Any]) -> str:
    rows = [
        "| figure | ours | baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    startup = results.get("startup")
    if startup:
        figures, ratios = startup["figures"], startup["ratios"]
        wall, rss = figures["entrypoint"]["wall_ms"], figures["entrypoint"]["rss_mb"]
        base_wall, base_rss = figures["baseline"]["wall_ms"], figures["baseline"]["rss_mb"]
        bare = figures["bare_botocore"]["wall_ms"]
        bare_rss = figures["bare_botocore"]["rss_mb"]
        rows.append(
            _row(
                "start-up wall time vs bare botocore (median, IQR)",
                f"{wall['median']:.0f} ms ({wall['p25']:.0f}-{wall['p75']:.0f})",
                f"{bare['median']:.0f} ms ({bare['p25']:.0f}-{bare['p75']:.0f})",
                ratios["wall_floor"],
                "<= 1.1x",
                ratios["wall_floor"] <= 1.1,
            )
        )
        rows.append(
            _row(
                "start-up wall time vs AWS sample (median, IQR)",
                f"{wall['median']:.0f} ms",
                f"{base_wall['median']:.0f} ms ({base_wall['p25']:.0f}-{base_wall['p75']:.0f})",
                ratios["wall"],
                "<= 0.85x",
                ratios["wall"] <= 0.85,
            )
        )
        verified = figures["bare_verified"]["wall_ms"]
        rows.append(
            _row(
                "start-up wall time vs bare botocore + pyjwt verify (median, IQR)",
                f"{wall['median']:.0f} ms",
                f"{verified['median']:.0f} ms ({verified['p25']:.0f}-{verified['p75']:.0f})",
                ratios["wall_verified_floor"],
                f"(context; {ratios['verified_floor_over_floor']:.2f}x bare botocore)",
                None,
            )
        )
        rows.append(
            _row(
                "start-up peak RSS vs bare botocore / AWS sample",
                f"{rss['median']:.1f} MB",
                f"{bare_rss['median']:.1f} / {base_rss['median']:.1f} MB",
                ratios["rss_floor"],
                f"(context; {ratios['rss']:.2f}x the sample)",
                None,
            )
        )
        floor = figures["python_floor"]["wall_ms"]
        rows.append(_row("python -c pass (floor)", f"{floor['median']:.0f} ms", "", None, "", None))
    verify = results.get("verify")
    if verify:
        figures = verify["figures_us"]
        ours, floor = figures["verify_signature"], figures["floor"]
        rows.append(
            _row(
                "verify_signature per token",
                f"{ours['median']:.1f} us",
                f"{floor['median']:.1f} us (bare RSA-PSS)",
                verify["ratios"]["verify_signature"],
                "<= 3x",
                verify["ratios"]["verify_signature"] <= 3.0,
            )
        )
        rows.append(
            _row(
                "pyjwt jwt.decode per token",
                f"{figures['pyjwt_decode']['median']:.1f} us",
                f"{floor['median']:.1f} us",
                verify["ratios"]["pyjwt_decode"],
                "(context)",
                None,
            )
        )
    instructions = results.get("instructions")
    if instructions and "ratio" in instructions:
        per_call = instructions["instructions_per_call"]
        rows.append(
            _row(
                "verify_signature, instructions (callgrind)",
                f"{per_call['ours'] / 1000:.0f}k",
                f"{per_call['floor'] / 1000:.0f}k",
                instructions["ratio"],
                "<= 3x",
                instructions["ratio"] <= 3.0,
            )
        )
    layer = results.get("layer")
    if layer and "ratio" in layer:
        rows.append(
            _row(
                "image layer (uncompressed)",
                f"{layer['entrypoint_layer_mb']:.1f} MB",
                f"{layer['naive_layer_mb']:.1f} MB",
                layer["ratio"],
                "<= 0.5x",
                layer["ratio"] <= 0.5,
            )
        )
    elif layer:
        rows.append(_row("image layer", "skipped", layer.get("skipped", ""), None, "<= 0.5x", None))
    emulator = results.get("emulator")
    if emulator:
        for level in emulator["levels"]:
            met = None
            if level["clients"] == 64:
                met = level["answers_per_second"] >= 200 and level["p99_ms"] <= 250
                met = met and level["errors"] == 0
            rows.append(
                _row(
                    f"emulator, {level['clients']} clients",
                    f"{level['answers_per_second']:.0f}/s, p50 {level['p50_ms']:.1f} ms, "
                    f"p99 {level['p99_ms']:.1f} ms, {level['errors']} errors",
                    "",
                    None,
                    ">= 200/s, p99 <= 250 ms at 64" if level["clients"] == 64 else "",
                    met,
                )
            )
    rows.extend(_meter_rows(results.get("meter")))
    fleet = results.get("fleet")
    if fleet:
        delay = fleet["start_delay_seconds"]
        rows.append(
            _row(
                "fleet: requests per registration",
                f"{fleet['amplification']:.2f}",
                "",
                None,
                "low (full jitter)",
                None,
            )
        )
        rows.append(
            _row(
                "fleet: start delay p50 / p90 / max",
                f"{delay['p50']:.1f} / {delay['p90']:.1f} / {delay['max']:.1f} s",
                "",
                None,
                "",
                None,
            )
        )
    return "\n".join(rows)


def _adds(figure: dict[str, Any]) -> str:
    return (
        f"{figure['adds_per_second']:,.0f}/s, p50 {figure['p50_us']:.0f} us, "
        f"p99 {figure['p99_us']:.0f} us"
    )


def _meter_rows(meter: dict[str, Any] | None) -> list[str]:
    """The usage store's rows (issue 12): durable adds against the JSON state file."""
    if not meter:
        return []
    ours, base, ratios = meter["ours"], meter["baseline"], meter["ratios"]
    eight, paced = ours["eight"], ours["eight_paced"]
    command = meter["command"]
    return [
        _row(
            "meter: durable adds, 1 process",
            _adds(ours["one"]),
            f"{_adds(base['one'])} (JSON file)",
            ratios["one"],
            "(context)",
            None,
        ),
        _row(
            "meter: durable adds, 8 processes",
            _adds(eight),
            f"{_adds(base['eight_threads'])} (JSON, 8 threads)",
            ratios["eight"],
            ">= 30,000/s, p99 <= 1 ms",
            eight["adds_per_second"] >= 30_000 and eight["p99_us"] <= 1000,
        ),
        _row(
            "meter: 8 processes paced to 30,000/s",
            _adds(paced),
            "",
            None,
            "p99 <= 1 ms at 30,000/s",
            paced["p99_us"] <= 1000 and paced["adds_per_second"] >= 0.95 * 30_000,
        ),
        _row(
            "meter: the same, all under one lock (no shards)",
            _adds(ours["eight_paced_shared"]),
            "",
            None,
            "(context: the design without shards)",
            None,
        ),
        _row(
            "meter: durability machine (fsync), 1 process",
            _adds(ours["one_machine"]),
            "",
            None,
            "(context)",
            None,
        ),
        _row(
            "meter add command, per call (median)",
            f"{command['meter_add_ms']:.0f} ms",
            f"{command['python_floor_ms']:.0f} ms (python -c pass)",
            command["meter_add_ms"] / command["python_floor_ms"],
            "(context)",
            None,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a small fleet")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: startup,verify,instructions,layer,emulator,meter,fleet",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    quick = args.quick

    from . import emulator_load, fleet, instructions, layer, meter_store, startup, verify_cost

    benchmarks: dict[str, Callable[[], dict[str, Any]]] = {
        "startup": lambda: startup.measure(rounds=10 if quick else 30),
        "verify": lambda: verify_cost.measure(repeat=5 if quick else 15),
        "instructions": lambda: instructions.measure(calls=200 if quick else 500),
        "layer": layer.measure,
        "emulator": lambda: emulator_load.measure(seconds=3 if quick else 8),
        "meter": lambda: (
            meter_store.measure(count=8_000, baseline_count=400, rounds=5)
            if quick
            else meter_store.measure()
        ),
        "fleet": lambda: (
            fleet.measure(entitled=40, unentitled=10, rate=5) if quick else fleet.measure()
        ),
    }
    chosen = [name for name in args.only.split(",") if name] or list(benchmarks)
    unknown = sorted(set(chosen) - set(benchmarks))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "started": time.time()}
    for name in chosen:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        results[name] = benchmarks[name]()
        print(f"   {name} took {time.monotonic() - began:.0f}s", file=sys.stderr, flush=True)
    results["machine_after"] = machine()["load_average"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    info = results["machine"]
    print(
        f"\n{info['cpu']}, {info['cores']} cores, Python {info['python']}; load average "
        f"{info['load_average'][0]:.1f} before, {results['machine_after'][0]:.1f} after; "
        f"JSON: {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
