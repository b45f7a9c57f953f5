"""Signals and exit statuses on the real process tree, as tini's and dumb-init's suites test them.

tests/test_cli.py covers SIGTERM/SIGINT during the call and during a backoff wait (143/130 within
a second). This module adds what happens around them: the dispositions the kernel reports
(``/proc/<pid>/status``) before and after exec, signals reaching the workload directly once it
is the process, an inherited SIG_IGN surviving as a direct exec would keep it, a signal at any
moment of a bootstrap never leaving a started workload behind an "interrupted" report, and the
workload's exit status passed through unchanged, for a sweep of codes and of deaths by signal.
"""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator

from .conftest import PRODUCT
from .support import CONSOLE_SCRIPT, base_env, proc_status, run_cli, signal_bit

HANDLED = (signal.SIGINT, signal.SIGTERM)


def start(
    keys_dir: Path, env: dict[str, str], workload: list[str], *, shell_prefix: str = ""
) -> subprocess.Popen[str]:
    """The console script as a real process (optionally exec'd from ``sh -c``)."""
    command = [str(CONSOLE_SCRIPT), "--keys-dir", str(keys_dir), "--", *workload]
    if shell_prefix:
        command = ["sh", "-c", f'{shell_prefix}; exec "$@"', "sh", *command]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def status_of(pid: int) -> dict[str, str]:
    return proc_status(Path(f"/proc/{pid}/status").read_text())


def cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0")[:-1]]


def wait_until(predicate: object, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def is_exec_of(pid: int, program: str) -> bool:
    try:
        return cmdline(pid)[:1] == [program]
    except (FileNotFoundError, ProcessLookupError):
        return False


def direct_exec_ignored(shell_prefix: str = "") -> int:
    """SigIgn of ``sleep`` started the same way without the entrypoint: the baseline a direct
    exec gives (whatever this test run inherited, e.g. from make, plus ``shell_prefix``)."""
    command = ["sh", "-c", f'{shell_prefix}; exec "$@"', "sh"] if shell_prefix else []
    process = subprocess.Popen([*command, "sleep", "30"])
    try:
        wait_until(lambda: is_exec_of(process.pid, "sleep"), "the control's exec")
        return int(status_of(process.pid)["SigIgn"], 16)
    finally:
        process.kill()
        process.wait()


def finish(process: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


# -- dispositions before and after exec ------------------------------------------------------------


def test_bootstrap_catches_int_and_term_then_the_workload_owns_every_signal(
    emulator: Emulator, keys_dir: Path
) -> None:
    """While registering, the entrypoint catches SIGINT and SIGTERM (PID 1 would otherwise drop
    them); after exec the same PID is ``sleep``, with no handler, nothing blocked and exactly the
    ignored set a direct exec gives (CPython's own SIGPIPE/SIGXFSZ ignores undone)."""
    emulator.configure(PRODUCT, throttle=10**9)  # held in the bootstrap until released below
    env = base_env(emulator, MARKETPLACE_RETRY_BASE_DELAY="0.3", MARKETPLACE_RETRY_MAX_DELAY="0.3")
    process = start(keys_dir, env, ["sleep", "30"])
    try:
        wait_until(lambda: len(emulator.calls()) >= 1, "the first (throttled) call")
        before = status_of(process.pid)
        emulator.configure(PRODUCT, throttle=0)
        caught = int(before["SigCgt"], 16)
        for signum in HANDLED:
            assert caught & signal_bit(signum), f"{signal.Signals(signum).name} not caught"
        wait_until(lambda: is_exec_of(process.pid, "sleep"), "the exec of sleep")
        after = status_of(process.pid)
        assert int(after["Pid"]) == process.pid
        assert int(after["SigCgt"], 16) == 0, after["SigCgt"]
        assert int(after["SigIgn"], 16) == direct_exec_ignored(), after["SigIgn"]
        assert int(after["SigBlk"], 16) == 0, after["SigBlk"]
    finally:
        process.kill()
        finish(process)


def test_after_exec_the_workload_receives_signals_directly(
    emulator: Emulator, keys_dir: Path
) -> None:
    """SIGTERM to the PID after exec is the workload's to handle: its own trap runs and its own
    exit status comes back; nothing of the entrypoint is left to intercept it."""
    script = "trap 'echo got-TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    process = start(keys_dir, base_env(emulator), ["sh", "-c", script])
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        assert cmdline(process.pid)[:2] == ["sh", "-c"]
        assert int(status_of(process.pid)["SigCgt"], 16) & signal_bit(signal.SIGTERM)  # sh's trap
        process.send_signal(signal.SIGTERM)
        code, out, err = finish(process)
    finally:
        process.kill()
    assert code == 42, err
    assert out == "got-TERM\n"
    assert "interrupted" not in err


@pytest.mark.parametrize("signum", HANDLED)
def test_after_exec_a_workload_without_handlers_dies_by_the_signal(
    emulator: Emulator, keys_dir: Path, signum: int
) -> None:
    process = start(keys_dir, base_env(emulator), ["sleep", "30"])
    wait_until(lambda: is_exec_of(process.pid, "sleep"), "the exec of sleep")
    process.send_signal(signum)
    code, _, err = finish(process)
    assert code == -signum, err  # death by signal, as the parent sees it
    assert "interrupted" not in err


def test_an_inherited_ignored_sigint_stays_ignored_for_the_workload(
    emulator: Emulator, keys_dir: Path
) -> None:
    """``nohup``-style: whoever started us ignored SIGINT. A direct exec keeps that; so do we,
    during the bootstrap (SIGINT does not interrupt it) and for the workload."""
    emulator.configure(PRODUCT, throttle=10**9)  # held in the bootstrap until released below
    env = base_env(emulator, MARKETPLACE_RETRY_BASE_DELAY="0.3", MARKETPLACE_RETRY_MAX_DELAY="0.3")
    process = start(keys_dir, env, ["sleep", "30"], shell_prefix="trap '' INT")
    try:
        wait_until(lambda: len(emulator.calls()) >= 1, "the first (throttled) call")
        during = status_of(process.pid)
        assert int(during["SigIgn"], 16) & signal_bit(signal.SIGINT)
        assert int(during["SigCgt"], 16) & signal_bit(signal.SIGTERM)
        process.send_signal(signal.SIGINT)  # ignored: the bootstrap carries on
        time.sleep(0.1)
        assert process.poll() is None
        emulator.configure(PRODUCT, throttle=0)
        wait_until(lambda: is_exec_of(process.pid, "sleep"), "the exec of sleep")
        after = status_of(process.pid)
        ignored = int(after["SigIgn"], 16)
        assert ignored & signal_bit(signal.SIGINT), after["SigIgn"]
        assert ignored == direct_exec_ignored("trap '' INT"), after["SigIgn"]
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert process.poll() is None, "the workload did not inherit the ignored SIGINT"
    finally:
        process.kill()
        finish(process)


# -- a signal at any moment ------------------------------------------------------------------------

DELAYS = [0.0, 0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6]


def handlers_installed(pid: int) -> bool:
    """True once the entrypoint catches SIGINT and SIGTERM (its first act in ``main``)."""
    try:
        caught = int(status_of(pid)["SigCgt"], 16)
    except (FileNotFoundError, ProcessLookupError, KeyError):
        return False
    return all(caught & signal_bit(s) for s in HANDLED)


@pytest.mark.parametrize("signum", HANDLED)
def test_a_signal_at_any_moment_ends_the_run_promptly_and_never_half_starts(
    emulator: Emulator, keys_dir: Path, tmp_path: Path, signum: int
) -> None:
    """Sweep the moment of the signal across the whole bootstrap, from the moment ``main`` has
    installed its handlers (seen in /proc) through imports, calls, backoff waits, verification
    and exec. Every run ends within a second of the signal, and either reports the interruption
    (128+N; the workload never started) or, after exec, the workload died by the signal itself.
    Never both. (Before ``main`` runs, in the interpreter's own start-up, Python's defaults
    apply: see `test_a_signal_before_main_starts_nothing`.)"""
    emulator.configure(PRODUCT, throttle=10**9)
    env = base_env(emulator, MARKETPLACE_RETRY_BASE_DELAY="0.1", MARKETPLACE_RETRY_MAX_DELAY="0.1")
    outcomes = set()
    for index, delay in enumerate(DELAYS):
        if index == len(DELAYS) // 2:
            emulator.configure(PRODUCT, throttle=2)  # later runs reach the exec, too
        report = tmp_path / f"started-{index}"
        process = start(keys_dir, env, ["sh", "-c", f'touch "{report}"; exec sleep 30'])
        wait_until(partial(handlers_installed, process.pid), "the handlers", limit=30)
        time.sleep(delay)
        sent = time.monotonic()
        process.send_signal(signum)
        code, _, err = finish(process)
        took = time.monotonic() - sent
        assert took < 1.0, f"delay {delay}: took {took:.2f}s to end"
        assert "Traceback" not in err
        interrupted = "interrupted: received" in err
        if interrupted:
            assert code == 128 + signum, err
            assert not report.exists(), "reported interrupted, yet the workload started"
            outcomes.add("interrupted")
        else:  # the signal reached the workload: sh before or after its touch, or sleep
            assert code == -signum, err
            assert "entitlement verified" in err
            outcomes.add("workload")
        emulator.reset_calls()
    assert "interrupted" in outcomes


@pytest.mark.parametrize("signum", HANDLED)
def test_a_signal_before_main_starts_nothing(keys_dir: Path, tmp_path: Path, signum: int) -> None:
    """Sent the instant the process exists, before Python has run a line of ours: the
    interpreter's defaults decide (death by the signal; for SIGINT possibly Python's own
    KeyboardInterrupt report), and no request is made, no workload starts."""
    with Emulator() as unused:
        report = tmp_path / "started"
        process = start(keys_dir, base_env(unused), ["touch", str(report)])
        process.send_signal(signum)
        code, _, err = finish(process)
        assert code in (-signum, 128 + signum), err
        assert not report.exists()
        assert unused.calls() == []


# -- exit statuses pass through -----------------------------------------------------------------

CODES = [0, 1, 2, 3, 42, 64, 65, 70, 75, 77, 78, 100, 125, 126, 127, 128, 129, 130, 143, 200, 255]
SIGNALS = [
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGILL,
    signal.SIGTRAP,
    signal.SIGABRT,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGKILL,
    signal.SIGUSR1,
    signal.SIGSEGV,
    signal.SIGUSR2,
    signal.SIGPIPE,
    signal.SIGALRM,
    signal.SIGTERM,
    signal.SIGXCPU,
    signal.SIGSYS,
]


def _run_workload(emulator: Emulator, keys_dir: Path, script: str, *, under_shell: bool) -> int:
    workload = ["sh", "-c", f"ulimit -c 0; {script}"]
    args = ["--keys-dir", str(keys_dir), "--", *workload]
    if under_shell:  # what an operator's wrapper script sees: $? is 128+N for death by signal
        program = ["sh", "-c", '"$@"; echo "status=$?"', "sh", str(CONSOLE_SCRIPT)]
        run = run_cli(args, base_env(emulator), program=program)
        assert run.returncode == 0, run.stderr
        return int(run.stdout.strip().rsplit("status=", 1)[1])
    return run_cli(args, base_env(emulator)).returncode


def test_exit_codes_pass_through_unchanged(emulator: Emulator, keys_dir: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda code: _run_workload(emulator, keys_dir, f"exit {code}", under_shell=False),
                CODES,
            )
        )
    assert results == CODES
    assert len(emulator.calls("RegisterUsage")) == len(CODES)


def test_death_by_signal_passes_through_as_minus_n_and_128_plus_n(
    emulator: Emulator, keys_dir: Path
) -> None:
    def both(signum: int) -> tuple[int, int]:
        script = f"kill -{int(signum)} $$"
        return (
            _run_workload(emulator, keys_dir, script, under_shell=False),
            _run_workload(emulator, keys_dir, script, under_shell=True),
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(both, SIGNALS))
    expected = [(-int(s), 128 + int(s)) for s in SIGNALS]
    assert results == expected


def test_exit_statuses_the_entrypoint_itself_uses_are_distinguishable_by_the_log(
    emulator: Emulator, keys_dir: Path
) -> None:
    """A workload exiting 77 is not "not entitled": only the entrypoint's own failures print a
    diagnosis line, so operators can tell the two apart."""
    run = run_cli(["--keys-dir", str(keys_dir), "--", "sh", "-c", "exit 77"], base_env(emulator))
    assert run.returncode == ExitCode.NOT_ENTITLED
    assert "error:" not in run.stderr
    assert "entitlement verified" in run.stderr
