"""The buyer's ``PYTHON*`` variables, through the real console script: the bootstrap ignores them.

``PYTHONINSPECT=1`` turned a refusal into an interactive prompt on a terminal (``docker run -it``,
Kubernetes ``tty``, ECS ``pseudoTerminal``), where ``os.execvp(...)`` starts anything, and into
exit status 1 without one. Now the bootstrap runs in isolated mode (`entrypoint.cli.isolate`) and
ends with its documented status (`entrypoint.cli.end_process`), while the workload still gets
every variable as it was given. The terminal here is a real pseudo-terminal.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator

from .conftest import PRODUCT
from .support import CONSOLE_SCRIPT, base_env, run_cli, run_on_terminal

NOT_ENTITLED = "marketplace-entrypoint: error: not entitled: "


@pytest.fixture
def not_entitled(emulator: Emulator) -> Emulator:
    emulator.configure(PRODUCT, outcome="not-entitled")
    return emulator


def test_pythoninspect_on_a_terminal_opens_no_prompt(
    not_entitled: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    startup = tmp_path / "startup.py"
    startup.write_text("print('PYTHONSTARTUP ran')\n")
    env = base_env(not_entitled, PYTHONINSPECT="1", PYTHONSTARTUP=str(startup))
    report = tmp_path / "started"
    argv = [str(CONSOLE_SCRIPT), "--keys-dir", str(keys_dir), "--", "touch", str(report)]
    code, output = run_on_terminal(argv, env)
    assert ">>> " not in output, f"a Python prompt opened after the refusal:\n{output}"
    assert code == ExitCode.NOT_ENTITLED, output
    assert NOT_ENTITLED in output
    assert "Traceback" not in output
    assert "PYTHONSTARTUP ran" not in output
    assert not report.exists()


def test_pythoninspect_without_a_terminal_keeps_the_exit_status(
    not_entitled: Emulator, keys_dir: Path
) -> None:
    """Without a terminal it was exit status 1 and a ``SystemExit: 77`` traceback."""
    env = base_env(not_entitled, PYTHONINSPECT="1")
    run = run_cli(["--keys-dir", str(keys_dir), "--", "true"], env)
    assert run.returncode == ExitCode.NOT_ENTITLED, run.stderr
    assert "SystemExit" not in run.stderr
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith(NOT_ENTITLED)


def test_pythonpath_does_not_choose_the_bootstraps_libraries(
    not_entitled: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """A ``botocore`` of the buyer's on PYTHONPATH was the one the bootstrap imported (and ran);
    the isolated bootstrap imports its own. Warnings-as-errors and -O change nothing either."""
    shadow = tmp_path / "shadow"
    (shadow / "botocore").mkdir(parents=True)
    marker = tmp_path / "shadow-ran"
    (shadow / "botocore" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit('the buyer runs here')\n"
    )
    env = base_env(not_entitled, PYTHONPATH=str(shadow), PYTHONWARNINGS="error", PYTHONOPTIMIZE="2")
    run = run_cli(["--keys-dir", str(keys_dir), "--", "true"], env)
    assert not marker.exists(), "the bootstrap imported botocore from PYTHONPATH"
    assert run.returncode == ExitCode.NOT_ENTITLED, run.stderr
    assert run.last_line.startswith(NOT_ENTITLED)


def test_the_workload_gets_every_python_variable_as_given(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    """The variables are the workload's business: its environment is byte for byte the one the
    bootstrap was started with, though the bootstrap re-executed itself to ignore them."""
    report = tmp_path / "environ"
    env = base_env(
        emulator,
        PYTHONINSPECT="1",
        PYTHONPATH=str(tmp_path),
        PYTHONWARNINGS="ignore",
        PYTHONSTARTUP=str(tmp_path / "nothing.py"),
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    workload = ["/bin/sh", "-c", 'cat "/proc/$$/environ" > "$0"', str(report)]
    run = run_cli(["--keys-dir", str(keys_dir), "--", *workload], env)
    assert run.returncode == 0, run.stderr
    given = sorted(f"{name}={value}" for name, value in env.items())
    received = sorted(entry.decode() for entry in report.read_bytes().split(b"\0") if entry)
    assert received == given


def test_the_bootstrap_runs_isolated(emulator: Emulator, keys_dir: Path) -> None:
    """While its RegisterUsage call is held back, the bootstrap's own command line (the
    kernel's /proc/<pid>/cmdline) is the interpreter in isolated mode: same PID, ``-I``."""
    emulator.configure(PRODUCT, latency=3.0)
    env = base_env(emulator)
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--keys-dir", str(keys_dir), "--", "true"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        argv: list[bytes] = []
        while time.monotonic() < deadline and not emulator.calls():
            argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
            time.sleep(0.05)
        assert argv[1:2] == [b"-I"], argv
    finally:
        process.wait(timeout=30)
    assert process.returncode == 0


def test_an_interpreter_that_cannot_be_restarted_isolated_is_refused_with_78() -> None:
    """Never go on without isolation: when the re-exec under ``-I`` fails (here the interpreter's
    path is gone; in CI, a Python under /root run by another UID), the run ends with 78 and a
    one-line diagnosis, not a traceback, and nothing is started."""
    probe = (
        "import sys; sys.executable = '/nonexistent/python3'; sys.argv = "
        "['marketplace-entrypoint', '--', 'true']; from entrypoint.console import main; main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == ExitCode.CONFIGURATION, run.stderr
    diagnosis = (
        "marketplace-entrypoint: error: configuration error: cannot restart the interpreter in "
        "isolated mode (python -I): No such file or directory: /nonexistent/python3; the "
        "workload was not started. Start it as `python3 -I -m entrypoint` (the image's launcher "
        "does) from a Python installation this user can execute"
    )
    assert run.stderr.splitlines() == [diagnosis]
