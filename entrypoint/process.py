"""The process's own start and end: an interpreter that takes nothing from the environment, and
the documented exit status whatever the environment says.

The buyer writes the task's environment. Without Python's isolated mode (``-I``),
``PYTHONINSPECT`` turns a refusal into an interactive prompt on a terminal (where
``os.execvp(...)`` starts anything) or into exit status 1 without one, ``PYTHONPATH`` chooses the
bootstrap's libraries (a ``botocore`` of the buyer's), ``PYTHONWARNINGS=error`` turns warnings
into failures, ``PYTHONOPTIMIZE`` and ``PYTHONHOME`` change what runs. `isolate` re-executes an
interpreter started without ``-I`` (pip's console scripts: `entrypoint.console`); every end of
the process is `end_process`, a flush and then ``os._exit``. This module imports only ``os`` and
``sys``, so the interpreter that is replaced costs little more than Python's own start-up.
"""

from __future__ import annotations

import os
import sys

# typing.TYPE_CHECKING, without importing typing here (mypy takes the name as the same constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["end_process", "flush_output", "isolate", "original_environ"]

_PROC_ENVIRON = "/proc/self/environ"
# ExitCode.CONFIGURATION (entrypoint.errors), as a number: this module imports only os and sys.
_CONFIGURATION = 78


def original_environ(
    proc_environ: str | os.PathLike[str] = _PROC_ENVIRON,
) -> dict[bytes, bytes] | None:
    """The environment this process was started with, as the kernel recorded it at ``execve``.

    CPython changes ``os.environ`` at start-up (PEP 538 sets ``LC_CTYPE=C.UTF-8`` when the locale
    is C, as in most containers); the workload must not inherit that. Bytes are kept as they
    were, so non-UTF-8 values survive too. ``None`` where ``/proc`` is not mounted. The first of
    duplicate names wins, as ``getenv``'s.
    """
    try:
        with open(proc_environ, "rb") as source:  # noqa: PTH123 - pathlib is 3 ms of a start
            raw = source.read()
    except OSError:
        return None
    env: dict[bytes, bytes] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            env.setdefault(name, value)
    return env


def isolate() -> None:
    """Make sure this interpreter runs in isolated mode (``python -I``); if it does not,
    re-execute it so, with the same arguments, the same PID and the environment the process was
    started with (`original_environ`). Options given on the command line itself (``-X``,
    ``-W``) are the command's author's, not the environment's, and are kept."""
    if sys.flags.isolated or not sys.executable:
        return
    environ = original_environ() or dict(os.environ)
    # orig_argv[0] is the interpreter as it was named; [1:] its options, then the script (or
    # -m module) and the arguments.
    command = [sys.executable, "-I", *sys.orig_argv[1:]]
    flush_output()
    try:
        os.execve(sys.executable, command, environ)  # noqa: S606 - the same program, isolated
    except OSError as error:
        # Fail closed: never go on without isolation. Seen when the interpreter is reachable
        # only through the caller's privileges (a Python under /root run by another UID).
        sys.stderr.write(
            "marketplace-entrypoint: error: configuration error: cannot restart the interpreter "
            f"in isolated mode (python -I): {error.strerror or error}: {sys.executable}; the "
            "workload was not started. Start it as `python3 -I -m entrypoint` (the image's "
            "launcher does) from a Python installation this user can execute\n"
        )
        end_process(_CONFIGURATION)


def flush_output() -> None:
    """Flush the entrypoint's log handlers, stdout and stderr; a closed or broken stream holds
    nothing worth keeping, so its errors are ignored."""
    logging = sys.modules.get("logging")  # nothing was logged if it was never imported
    if logging is not None:
        for handler in logging.getLogger("marketplace_entrypoint").handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001, S112 - a broken handler must not keep the status
                continue
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            continue


def end_process(code: int) -> NoReturn:
    """Flush what was written, then end the process with ``code`` at once (``os._exit``).

    ``sys.exit`` hands the status to the interpreter's shutdown, which the environment can
    change: ``PYTHONINSPECT`` opens a prompt instead (or exits 1 without a terminal), and a
    failing flush of stdout at shutdown turns any status into 120. Nothing needs the shutdown:
    no atexit handler is registered, and every thread still running is a daemon.
    """
    flush_output()
    os._exit(code)
