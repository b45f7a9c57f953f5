"""``marketplace-entrypoint emulator --license``: the emulated License Manager from the command
line, serving a real contract product's start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from entrypoint import ExitCode

from .license_support import ALLOW, PRODUCT_ID, write_contract
from .support import CONSOLE_SCRIPT, WORKLOAD, base_env, run_cli


def test_the_emulator_command_serves_a_contract_product_start(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            str(CONSOLE_SCRIPT),
            "emulator",
            "--port",
            "0",
            "--license",
            f"{PRODUCT_ID}:count=Users/1,valid-for=86400,throttle=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[4]
        announced = []
        while "point a bootstrap" not in (line := server.stdout.readline()):
            announced.append(line)
        assert any(
            line.startswith(f"  license for {PRODUCT_ID}: Users (max 1 Count); AVAILABLE")
            for line in announced
        ), announced
        exports = [server.stdout.readline() for _ in range(2)]
        assert exports[1].startswith(f"  export AWS_ENDPOINT_URL_LICENSE_MANAGER={url}"), exports
        report = tmp_path / "report.json"
        keys = write_contract(tmp_path / "keys", "floating")
        env = base_env(url, AWS_ENDPOINT_URL_LICENSE_MANAGER=url)
        run = run_cli(
            ["--keys-dir", str(keys), ALLOW, "--", sys.executable, str(WORKLOAD), str(report)], env
        )
        assert run.returncode == 0, run.stderr
        assert "after 2 attempts" in run.stderr
        with urllib.request.urlopen(f"{url}/_emulator/state", timeout=5) as response:  # noqa: S310
            state = json.loads(response.read())["license_manager"]
        assert state["held_checkouts"] == 0
        assert len(state["checkouts"]) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=10)
    assert server.returncode == 0


def test_the_emulator_command_refuses_a_bad_license_spec() -> None:
    run = run_cli(["emulator", "--license", "prod-x:seats=3"], {"PATH": os.environ["PATH"]})
    assert run.returncode == ExitCode.USAGE, run.stderr
    assert "--license 'prod-x:seats=3': unknown license option 'seats=3'" in run.last_line
