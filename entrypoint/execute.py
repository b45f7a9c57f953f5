"""Replace this process with the workload: same PID, same argv, same environment.

Before ``execve`` the process is put back the way a plain exec from tini would leave it:

* CPython ignores SIGPIPE and SIGXFSZ at start-up, and ignored signals survive ``exec``: a
  workload would then get EPIPE instead of dying on a closed pipe. Both go back to SIG_DFL.
* The signal mask is inherited by the new program: it is cleared.
* Buffered output is flushed, or it would be lost with the old image.
* The environment is the one this process was *started* with, read back from
  ``/proc/self/environ``: CPython itself changes ``os.environ`` at start-up (PEP 538 sets
  ``LC_CTYPE=C.UTF-8`` when the locale is C, as in most containers), and the workload must not
  inherit that. Bytes are passed as they were, so non-UTF-8 values survive too.

Failure follows the shell's and tini's convention: 127 when the program is not found, 126 when it
cannot be executed.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Mapping, Sequence
from typing import NoReturn, cast

from .errors import UsageError, WorkloadExecError, one_line
from .process import flush_output, original_environ

__all__ = ["CPYTHON_IGNORED_SIGNALS", "exec_workload", "original_environ", "reset_signals_for_exec"]

CPYTHON_IGNORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def reset_signals_for_exec() -> None:
    """Undo what CPython changed in signal state, so the workload starts with the defaults."""
    for signum in CPYTHON_IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def exec_workload(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> NoReturn:
    """``execvpe`` the workload; on failure raise `WorkloadExecError` (126/127).

    ``environ`` defaults to the environment this process was started with (`original_environ`),
    falling back to ``os.environ``. ``argv[0]`` is searched on that environment's PATH when it has
    no slash, as a shell would.
    """
    if not argv:
        raise UsageError(
            "no workload to start",
            remedy="put the workload's command after --, e.g. marketplace-entrypoint -- my-server",
        )
    env: Mapping[bytes, bytes] | Mapping[str, str] = (
        dict(environ) if environ is not None else original_environ() or dict(os.environ)
    )
    program = argv[0]
    flush_output()
    reset_signals_for_exec()
    try:
        os.execvpe(program, list(argv), env)  # noqa: S606 - starting the workload is the job
    except OSError as exc:
        shown = one_line(program, 120)
        # typeshed types get_exec_path for str keys only; CPython reads bytes environments too.
        path = one_line(os.pathsep.join(os.get_exec_path(cast("Mapping[str, str]", env))), 200)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise WorkloadExecError(
                f"workload {shown!r} not found" + ("" if "/" in program else f" on PATH={path}"),
                not_found=True,
                remedy="check the image's CMD and that the program is installed",
            ) from None
        if exc.errno == errno.ENOEXEC:
            reason = "is not in an executable format (a script without a #! line?)"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            reason = "is not executable (permission denied, a directory, or a noexec mount)"
        else:
            reason = f"could not be executed ({exc.strerror or exc})"
        raise WorkloadExecError(
            f"workload {shown!r} {reason}",
            not_found=False,
            remedy="check the file's mode (chmod +x), its #! line and the container's user",
        ) from None
