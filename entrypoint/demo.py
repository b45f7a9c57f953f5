"""``marketplace-entrypoint demo``: the whole bootstrap against the embedded emulator.

Starts the Metering emulator in-process on loopback, writes a temporary keys directory for its
signing key, runs the real flow over HTTP (RegisterUsage with retries, PS256 verification) and then
execs the workload: by default a tiny program that prints the verified entitlement. The temporary
keys are deleted and the emulator stopped before the exec, so nothing is left behind.

    marketplace-entrypoint demo                       # entitled, after one throttled attempt
    marketplace-entrypoint demo --outcome not-entitled  # exits 77, workload never runs
    marketplace-entrypoint demo -- env                # exec any command once verified
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .config import LogFormat, Settings
from .emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator, Outcome
from .errors import UsageError
from .flags import Parser
from .region import ResolvedRegion

__all__ = ["DEMO_PRODUCT", "parse", "run"]

DEMO_PRODUCT = "demo-product-0123456789"

# The default workload: shows that it runs in the bootstrap's process with the verified facts.
_DEFAULT_WORKLOAD = """\
import json, os, sys
facts = json.loads(sys.argv[1])
print(f"workload: running as PID {os.getpid()}, exec'd by marketplace-entrypoint after a "
      "verified RegisterUsage:")
for name, value in facts.items():
    print(f"  {name:20} {value}")
"""


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    args = list(argv)
    workload: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, workload = args[:cut], args[cut + 1 :]
    parser = Parser(
        prog="marketplace-entrypoint demo",
        description="Run the verified bootstrap end to end against the embedded emulator.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--product-code", default=DEMO_PRODUCT)
    parser.add_argument(
        "--outcome",
        choices=[o.value for o in Outcome],
        default=Outcome.ENTITLED.value,
        help="how the emulator answers once its throttles are used up",
    )
    parser.add_argument(
        "--throttle", type=int, default=1, help="throttled answers before the outcome (default 1)"
    )
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--log-format", choices=[f.value for f in LogFormat], default="text")
    return parser.parse_args(args), workload


def run(args: argparse.Namespace, workload: list[str]) -> list[str]:
    """Run the demo bootstrap; return the argv to exec (the caller execs outside signal scope)."""
    from .bootstrap import register_and_verify
    from .metering import BotocoreMeteringClient, StaticCredentials

    if args.throttle < 0:
        raise UsageError("--throttle must be 0 or more")
    with (
        tempfile.TemporaryDirectory(prefix="marketplace-entrypoint-demo-") as tmp,
        Emulator() as em,
    ):
        em.configure(args.product_code, outcome=args.outcome, throttle=args.throttle)
        keys_dir = em.write_keys(Path(tmp) / "keys")
        settings = Settings(
            keys_dir=keys_dir,
            product_code=args.product_code,
            deadline=args.deadline,
            log_format=LogFormat(args.log_format),
            retry_base_delay=0.5,
            retry_max_delay=5.0,
        )
        client = BotocoreMeteringClient(
            region=em.region,
            endpoint_url=em.url,
            # The emulator's own test key pair: it checks SigV4 like AWS, against keys it knows.
            credentials=StaticCredentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY),
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        entitlement = register_and_verify(
            settings,
            environ={},
            region=ResolvedRegion(name=em.region, source="the demo emulator"),
            client=client,
        )
    if workload:
        return workload
    return [sys.executable, "-I", "-c", _DEFAULT_WORKLOAD, json.dumps(entitlement.summary())]
