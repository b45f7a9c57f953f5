"""``marketplace-entrypoint``: register usage, verify the answer, exec the workload.

    ENTRYPOINT ["tini", "--", "marketplace-entrypoint", "--"]
    CMD ["my-server", "--port", "8080"]

Subcommands: ``demo`` (the whole flow against the embedded emulator), ``emulator`` (run the
emulator) and ``meter`` (report custom-dimension usage with MeterUsage). Anything else is the
bootstrap itself: options, then ``--``, then the workload.

This module imports only the standard library at the top, so SIGINT/SIGTERM handlers are in
place before the SDK's imports start (about 150 ms of a cold start).

The buyer writes the task's environment, so the interpreter must not take its behaviour from it:
the bootstrap runs in Python's isolated mode (``-I``: no ``PYTHON*`` variables, no user
site-packages, nothing imported from the working directory), re-executing itself once if it was
started without (`entrypoint.process`; the image's launcher starts it isolated already), and
ends with ``os._exit`` after flushing its output, so no ``PYTHONINSPECT`` prompt and no exit
status other than the documented one can follow a refusal. The workload still gets the
environment exactly as given, ``PYTHON*`` variables included (`entrypoint.execute`).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .errors import BootstrapInterrupted, EntrypointError, ExitCode, UsageError
from .flags import PROGRAM, parse_settings_args, settings_parser
from .signals import Interrupted, raise_if_interrupted, raise_on_signals

__all__ = ["main"]


def _peek_log_format(argv: Sequence[str]) -> str:
    """The log format, before full parsing, so that parse errors are logged in it too."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--log-format" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--log-format="):
            return arg.partition("=")[2]
    return os.environ.get("MARKETPLACE_LOG_FORMAT", "text")


def _setup_logging(fmt: str) -> None:
    from .config import LogFormat
    from .logs import configure_logging

    try:
        log_format = LogFormat(fmt.strip().lower())
    except ValueError:
        log_format = LogFormat.TEXT  # the bad value itself is reported by settings parsing
    configure_logging(log_format)


def _bootstrap(argv: Sequence[str]) -> list[str]:
    """Parse, register and verify (or check the license out). Returns the workload's argv."""
    from .bootstrap import entitle

    args = settings_parser().parse_args(list(argv))
    workload: list[str] = list(args.workload)
    if workload[:1] == ["--"]:
        workload = workload[1:]
    settings = parse_settings_args(args)
    if not workload:
        raise UsageError(
            "no workload to start",
            remedy=f"put the workload's command after --: {PROGRAM} -- my-server --port 8080",
        )
    entitle(settings, environ=os.environ)
    return workload


def _demo(argv: Sequence[str]) -> list[str]:
    demo = _development_tool("demo", "entrypoint.demo")
    args, workload = demo.parse(argv)
    _setup_logging(args.log_format)
    workload_argv: list[str] = demo.run(args, workload)
    return workload_argv


def _emulator(argv: Sequence[str]) -> int:
    emulator_cli = _development_tool("emulator", "entrypoint.emulator.cli")
    code: int = emulator_cli.main(argv)
    return code


# What docker/image_build.py leaves out of the production image.
_DEVELOPMENT_MODULES = ("entrypoint.demo", "entrypoint.emulator")


def _development_tool(command: str, module: str) -> Any:  # noqa: ANN401 - the tool's module
    """Import a development tool's module. The production image leaves the demo and the emulator
    out (docker/image_build.py): there, asking for them is a usage error, not an ImportError."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(_DEVELOPMENT_MODULES):
            raise  # a dependency is missing: a broken installation, not a left-out tool
        raise UsageError(
            f"{command!r} is not part of this installation: the demo and the emulator are "
            "development tools, left out of the production image",
            remedy=f"run `{PROGRAM} {command}` from a development install "
            "(pip install marketplace-entrypoint)",
        ) from None


def _report(error: EntrypointError) -> int:
    from .logs import event

    event(
        logging.ERROR,
        error.diagnosis(),
        event="bootstrap_failed",
        exit_code=int(error.exit_code),
        error=type(error).__name__,
    )
    return int(error.exit_code)


def _run(step: Callable[[], list[str] | int]) -> int:
    """Run ``step`` with signals raising; exec what it returns, or return its exit status."""
    try:
        with raise_on_signals():
            outcome = step()
            # The last check before exec: a signal whose exception native code swallowed on
            # the way here must not let the workload start.
            raise_if_interrupted()
        if isinstance(outcome, int):
            return outcome
        from .execute import exec_workload

        exec_workload(outcome)
    except Interrupted as interrupt:
        return _report(BootstrapInterrupted(interrupt.signum))
    except KeyboardInterrupt:
        return _report(BootstrapInterrupted(2))
    except EntrypointError as error:
        return _report(error)
    except Exception as exc:  # noqa: BLE001 - a bug: say so on one line, then show the trace
        from .logs import event

        event(
            logging.CRITICAL,
            f"internal error: {type(exc).__name__}: {exc}; the workload was not started. "
            "Please report this with the traceback below.",
            event="internal_error",
            exit_code=int(ExitCode.INTERNAL),
        )
        traceback.print_exc(file=sys.stderr)
        return int(ExitCode.INTERNAL)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point (``argv`` None: this process's own arguments).

    As the console script, the bootstrap runs in isolated mode (`entrypoint.process.isolate`)
    and the process ends with `entrypoint.process.end_process`: the exit status is the
    documented one whatever the environment says.

    SIGINT and SIGTERM raise from here on, not only around the bootstrap's steps: one arriving
    while logging is set up (which imports cryptography, the longest stretch of a cold start)
    ends the run with 128+N and the one-line diagnosis, not a KeyboardInterrupt traceback or a
    silent death.
    """
    from .process import end_process, isolate

    if argv is None:
        isolate()
    args = list(sys.argv[1:] if argv is None else argv)
    with raise_on_signals():
        try:
            code = _main(args)
        except Interrupted as interrupt:
            code = _interrupted_early(interrupt.signum)
        except KeyboardInterrupt:
            code = _interrupted_early(2)
        except SystemExit as done:  # argparse's --help and --version
            if argv is not None:
                raise
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
    if argv is None:
        end_process(code)
    sys.exit(code)


def _interrupted_early(signum: int) -> int:
    """Report an interruption that came before `_run` took over (logging may not be set up)."""
    from .logs import logger

    if not logger.handlers:
        _setup_logging("text")
    return _report(BootstrapInterrupted(signum))


def _main(args: list[str]) -> int:
    command = args[0] if args else ""
    if command == "check":
        from .check import run_check

        _setup_logging(_peek_log_format(args[1:]))
        return _run(lambda: run_check(args[1:]))
    if command == "emulator":
        _setup_logging("text")
        return _run(lambda: _emulator(args[1:]))
    if command == "demo":
        _setup_logging(_peek_log_format(args[1:]))
        return _run(lambda: _demo(args[1:]))
    if command == "meter":
        from .meter.cli import fast_path
        from .meter.cli import main as meter_main

        if not fast_path(args[1:]):
            _setup_logging(_peek_log_format(args[1:]))
            return _run(lambda: meter_main(args[1:]))

        def add() -> int:  # meter add: logging (a slow import) is set up only if it fails
            try:
                return meter_main(args[1:])
            except BaseException:
                _setup_logging(_peek_log_format(args[1:]))
                raise

        return _run(add)
    _setup_logging(_peek_log_format(args))
    return _run(lambda: _bootstrap(args))
