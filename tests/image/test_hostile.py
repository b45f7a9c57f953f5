"""The built image under a hostile task definition (issue 11): the buyer writes the environment,
the CMD and whether there is a terminal.

Each run is the image's own ENTRYPOINT + CMD as PID 1 (tests/image/run.py). The launcher runs the
bootstrap in isolated mode (``#!/usr/bin/env -S python3 -I``); the image has no demo and no
emulator; a CMD behind an ENTRYPOINT without its trailing ``--`` cannot repeat a trust option.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from entrypoint.emulator import Emulator
from tests.support import read_terminal

from .buildah import Buildah
from .conftest import PRODUCT
from .run import Container, in_root
from .test_image import assert_refused, mounted, task_env

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

KEYS = "/etc/marketplace-entrypoint/keys"
WORKLOAD = ["python3", "-c", "print('workload ran')"]
BUYER_CODE = "/tmp/buyer"
BUYER_KEYS = "/tmp/buyer-keys"
SITECUSTOMIZE = "import sys; sys.stderr.write('the buyer ran code in the bootstrap\\n')\n"
# Every variable that changes how CPython itself behaves, set as a hostile task definition would.
PYTHON_VARIABLES = {
    "PYTHONINSPECT": "1",
    "PYTHONPATH": BUYER_CODE,
    "PYTHONSTARTUP": f"{BUYER_CODE}/sitecustomize.py",
    "PYTHONWARNINGS": "error",
    "PYTHONHOME": "/nonexistent",
    "PYTHONOPTIMIZE": "2",
}


def start_on_a_terminal(
    container: Container, terminal: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``container.start()`` with the pseudo-terminal ``terminal`` as the runtime's stdin, stdout
    and stderr, in a session of its own: what ``docker run -t`` gives the container."""
    popen = subprocess.Popen

    def on_the_terminal(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
        options |= {"stdin": terminal, "stdout": terminal, "stderr": terminal}
        return popen(command, **options, start_new_session=True)

    with monkeypatch.context() as patched:
        patched.setattr(subprocess, "Popen", on_the_terminal)
        container.start()


def plant_buyer_code(root: Path) -> None:
    code = in_root(root, BUYER_CODE)
    code.mkdir(parents=True)
    (code / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (code / "sitecustomize.py").chmod(0o644)
    code.chmod(0o755)


def test_python_variables_never_reach_the_bootstrap(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    """Before the launcher ran isolated, PYTHONHOME alone stopped Python from starting (exit 1),
    PYTHONPATH ran the buyer's sitecustomize inside the bootstrap, and PYTHONINSPECT turned a
    refusal into exit 1 with a ``SystemExit`` traceback."""
    emulator.configure(PRODUCT, outcome="not-entitled")
    env = task_env(emulator, **PYTHON_VARIABLES)
    with Container(
        buildah, product_image, env=env, cmd=WORKLOAD, prepare=plant_buyer_code
    ) as container:
        run = container.run()
    assert_refused(run, 77, "not entitled")
    assert "the buyer ran code" not in run.stderr
    assert "SystemExit" not in run.stderr
    assert "workload ran" not in run.stdout


def test_pythoninspect_on_a_terminal_opens_no_prompt_in_the_image(
    buildah: Buildah, product_image: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docker run -it`` / Kubernetes ``tty: true`` / ECS ``pseudoTerminal``: the container's
    stdin, stdout and stderr are a real pseudo-terminal (here, tini's too)."""
    emulator.configure(PRODUCT, outcome="not-entitled")
    env = task_env(emulator, PYTHONINSPECT="1")
    with Container(buildah, product_image, env=env, cmd=WORKLOAD) as container:
        master, slave = os.openpty()
        start_on_a_terminal(container, slave, monkeypatch)
        os.close(slave)
        assert container.process is not None
        code, output = read_terminal(master, container.process, timeout=120)
    assert ">>> " not in output, f"a Python prompt opened in the container:\n{output}"
    assert code == 77, output
    assert "marketplace-entrypoint: error: not entitled: " in output
    assert "Traceback" not in output
    assert "workload ran" not in output


def test_the_workload_in_the_image_gets_every_variable_as_given(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    """The variables are the workload's business (``env`` prints them; a Python workload would
    take them as its own)."""
    env = task_env(emulator, **PYTHON_VARIABLES)
    with Container(
        buildah, product_image, env=env, cmd=["env"], prepare=plant_buyer_code
    ) as container:
        run = container.run()
        given = sorted(f"{name}={value}" for name, value in container.env.items())
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == given


def test_a_cmd_cannot_replace_the_baked_keys_directory(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    """``ENTRYPOINT [..., "--keys-dir", <baked>]`` without its trailing ``--`` and
    ``CMD ["--keys-dir", "/buyer/keys", "--", "app"]``: the last value won, so a buyer's own
    keys (valid ones, here) were trusted."""

    def plant_buyer_keys(root: Path) -> None:
        keys = emulator.write_keys(in_root(root, BUYER_KEYS))
        for path in [keys, *keys.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    entrypoint = ["tini", "--", "marketplace-entrypoint", "--keys-dir", KEYS]
    cmd = ["--keys-dir", BUYER_KEYS, "--", *WORKLOAD]
    with Container(
        buildah,
        product_image,
        env=task_env(emulator),
        entrypoint=entrypoint,
        cmd=cmd,
        prepare=plant_buyer_keys,
    ) as container:
        run = container.run()
    assert_refused(run, 64, "usage error")
    assert "--keys-dir is given more than once" in run.last_line
    assert "workload ran" not in run.stdout
    assert emulator.calls() == []


@pytest.mark.parametrize("command", ["demo", "emulator"])
def test_the_development_tools_are_not_part_of_the_image(
    buildah: Buildah, product_image: str, emulator: Emulator, command: str
) -> None:
    """``ENTRYPOINT ["tini", "--", "marketplace-entrypoint"]`` + ``CMD ["demo", "--", "app"]``
    ran the workload with no RegisterUsage at all."""
    with Container(
        buildah,
        product_image,
        env=task_env(emulator),
        entrypoint=["tini", "--", "marketplace-entrypoint"],
        cmd=[command, "--", *WORKLOAD],
    ) as container:
        run = container.run()
    assert_refused(run, 64, "usage error")
    assert f"{command!r} is not part of this installation" in run.last_line
    assert "workload ran" not in run.stdout
    assert emulator.calls() == []


def test_the_image_holds_no_demo_and_no_emulator(buildah: Buildah, entrypoint_image: str) -> None:
    with mounted(buildah, entrypoint_image) as root:
        package = root / "opt/marketplace-entrypoint/lib/entrypoint"
        assert (package / "cli.py").is_file()
        assert not (package / "demo.py").exists()
        assert not (package / "emulator").exists()
        launcher = (root / "usr/local/bin/marketplace-entrypoint").read_text()
        assert launcher.splitlines()[0] == "#!/usr/bin/env -S python3 -I"
