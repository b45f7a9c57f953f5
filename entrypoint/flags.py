"""Command-line flags shared by every command: the parser class and the setting flags.

Each setting flag is also read from the environment variable `entrypoint.config.ENV` names (the
flag wins). This module sits below every command (`cli`, `check`, `meter.cli`, `demo`,
`emulator.cli`) and imports none of them, so the commands never import each other.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from ._version import __version__
from .errors import UsageError

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "COMMON_SETTING_FLAGS",
    "PROGRAM",
    "SETTING_NAMES",
    "Parser",
    "StoreOnce",
    "add_setting_flags",
    "parse_settings_args",
    "settings_parser",
]

PROGRAM = "marketplace-entrypoint"
SETTING_NAMES = (
    "product_code",
    "public_key_version",
    "deadline",
    "log_format",
    "connect_timeout",
    "read_timeout",
    "retry_base_delay",
    "retry_max_delay",
)

USAGE = f"""\
{PROGRAM} [OPTIONS] [--] WORKLOAD [ARG...]
       {PROGRAM} check [OPTIONS] [--call] [--meter-dimension D]...
       {PROGRAM} demo [--outcome OUTCOME] [-- WORKLOAD...]
       {PROGRAM} emulator [--port N] [--keys-out DIR] [--product CODE[:OPTIONS]]...
       {PROGRAM} meter add --dimension D --quantity Q [--timestamp T]
       {PROGRAM} meter serve [--dimension D]...
       {PROGRAM} meter status
       {PROGRAM} meter --dimension D (--quantity Q [--timestamp T] | --dry-run)"""

EPILOG = """\
Every option except --keys-dir and --allow-license-endpoint-override can also come from the
environment variable named in brackets.
Exit codes: 64 usage, 65 bad signature, 69 platform not supported, 70 internal error,
75 retries exhausted, 76 unexpected service error, 77 not entitled, 78 configuration,
126/127 workload not executable/not found, 130/143 interrupted by SIGINT/SIGTERM.
"""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are `UsageError` (exit 64, one line), not argparse's
    own exit 2 with a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, remedy=f"see {self.prog} --help")


class StoreOnce(argparse.Action):
    """``store``, but an option given twice is a usage error instead of "the last one wins".

    An image's ENTRYPOINT without the trailing ``--`` lets its CMD (which the buyer writes)
    add options after the image's: ``CMD ["--keys-dir", "/buyer/keys", "--", "app"]`` would
    replace the baked keys directory. Every option of the bootstrap is taken at most once.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,  # noqa: ARG002 - argparse.Action.__call__
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is not None:
            raise UsageError(
                f"{option_string or self.dest} is given more than once",
                remedy="give each option once, before the -- that starts the workload (an "
                "image's ENTRYPOINT should end with --, so that its CMD cannot add options)",
            )
        setattr(namespace, self.dest, values)


# Flags every command shares, each also read from the environment variable config.ENV names.
COMMON_SETTING_FLAGS = (
    ("--log-format", "text|json", "log line format (default text)"),
    ("--connect-timeout", "SECONDS", "per-attempt connect timeout (default 5)"),
    ("--read-timeout", "SECONDS", "per-attempt read timeout (default 10)"),
    ("--retry-base-delay", "SECONDS", "first backoff ceiling (default 1)"),
    ("--retry-max-delay", "SECONDS", "backoff ceiling cap (default 30)"),
)


def add_setting_flags(
    parser: argparse.ArgumentParser,
    specific: Sequence[tuple[str, str, str]],
    *,
    once: bool = False,
) -> None:
    """Add ``specific`` and then the common setting flags, each help naming its variable;
    ``once``: each may be given only once (`StoreOnce`)."""
    from .config import ENV

    action: type[argparse.Action] | str = StoreOnce if once else "store"
    for flag, metavar, text in (*specific, *COMMON_SETTING_FLAGS):
        env = ENV[flag[2:].replace("-", "_")]
        parser.add_argument(flag, metavar=metavar, action=action, help=f"{text} [{env}]")


def settings_parser(*, check: bool = False) -> Parser:
    """The bootstrap's options; ``check`` swaps the workload for ``--call``."""
    from .keys import DEFAULT_KEYS_DIR

    parser = Parser(
        prog=f"{PROGRAM} check" if check else PROGRAM,
        usage=None if check else USAGE,
        description=(
            "Preflight: validate the keys directory and settings, resolve the Region and "
            "credentials as a start would, and with --call make one RegisterUsage call and verify "
            "it. Nothing is exec'd; exit codes are those of a real start."
            if check
            else "Call AWS Marketplace RegisterUsage, verify the signed answer against the "
            "image's public key, then exec the workload (same PID, argv and environment)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--keys-dir",
        metavar="DIR",
        action=StoreOnce,
        help=f"trusted keys, <DIR>/<PRODUCT_CODE>/v<N>.pem (default {DEFAULT_KEYS_DIR}; "
        "a flag only: trust comes from the image)",
    )
    add_setting_flags(
        parser,
        [
            ("--product-code", "CODE", "product to register (default: the only trusted one)"),
            ("--public-key-version", "N", "key version (default: the highest present)"),
            ("--deadline", "SECONDS", "retry RegisterUsage for this long (default 1800)"),
        ],
        once=True,
    )
    parser.add_argument(
        "--allow-license-endpoint-override",
        action="store_true",
        help="contract products: honour AWS_ENDPOINT_URL_LICENSE_MANAGER, AWS_ENDPOINT_URL, the "
        "config file's endpoint_url and AWS_CA_BUNDLE for License Manager (tests and emulators "
        "only; a flag only: License Manager answers carry no signature)",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    if check:
        parser.add_argument(
            "--call", action="store_true", help="make one RegisterUsage call and verify it"
        )
        parser.add_argument(
            "--meter-dimension",
            action="append",
            default=[],
            metavar="DIMENSION",
            help="also check MeterUsage for this pricing dimension with a DryRun (repeatable)",
        )
    else:
        parser.add_argument("workload", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def parse_settings_args(args: argparse.Namespace) -> Settings:
    """`Settings` from parsed flags, then the process environment."""
    from .config import parse_settings

    return parse_settings(
        {name: getattr(args, name) for name in SETTING_NAMES},
        os.environ,
        keys_dir=args.keys_dir,
        allow_license_endpoint_override=bool(
            getattr(args, "allow_license_endpoint_override", False)
        ),
    )
