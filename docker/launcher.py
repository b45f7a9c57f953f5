#!/usr/bin/env -S python3 -I
"""``marketplace-entrypoint`` in the image: run the bootstrap from /opt/marketplace-entrypoint.

The interpreter runs in isolated mode (``-I``: no ``PYTHON*`` variable, no user site-packages,
not the script's directory on ``sys.path``): the buyer writes the task's environment, and
``PYTHONINSPECT``, ``PYTHONPATH``, ``PYTHONSTARTUP``, ``PYTHONWARNINGS`` or ``PYTHONHOME`` must
not change what the bootstrap does. ``env -S`` splits the line into ``python3`` and ``-I`` (GNU
coreutils 8.30 and later; Debian bookworm has 9.1). Started without ``-I`` anyway (``python3
/usr/local/bin/marketplace-entrypoint``), the bootstrap re-executes itself isolated
(`entrypoint.cli.isolate`).

docker/Dockerfile installs this file as ``/usr/local/bin/marketplace-entrypoint``. The libraries
live in ``/opt/marketplace-entrypoint/lib`` (``pip install --target``, no virtual environment), so
the tree can be copied into another image whose ``python3`` is elsewhere (``/usr/bin`` in Debian,
``/usr/local/bin`` in the official Python images): this file finds whichever ``python3`` is first
on PATH, as ``#!/usr/bin/env`` does, and puts the libraries first on ``sys.path``, ahead of any
copy of botocore or cryptography the workload's own PYTHONPATH or site-packages may hold.

Nothing is added to the environment: the workload the bootstrap execs inherits exactly the
environment this process was started with (see entrypoint/execute.py).

The libraries hold compiled extensions for one CPython minor version (cffi's ``_cffi_backend`` is
built per version), recorded in ``/opt/marketplace-entrypoint/python-version`` at build time. On
another version this exits 78 (configuration) with a one-line diagnosis instead of an ImportError.
This file therefore sticks to syntax Python 3.6 and later can parse.
"""

import sys
from pathlib import Path

PREFIX = Path("/opt/marketplace-entrypoint")
EX_CONFIG = 78  # entrypoint.errors.ExitCode.CONFIGURATION


def _built_for() -> str:
    try:
        return (PREFIX / "python-version").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def main() -> None:
    running = "{}.{}".format(*sys.version_info[:2])
    built = _built_for()
    if built and built != running:
        sys.stderr.write(
            "marketplace-entrypoint: error: configuration error: "
            f"{PREFIX} was built for Python {built} but {sys.executable} is Python {running}; "
            "build docker/Dockerfile with --build-arg BASE_IMAGE=<an image with Python "
            f"{running}>, or put Python {built} first on PATH\n"
        )
        sys.exit(EX_CONFIG)
    here = str(Path(__file__).resolve().parent)
    # As -I (or -P) does: never import from the directory this script sits in (/usr/local/bin).
    sys.path[:] = [str(PREFIX / "lib"), *(p for p in sys.path if p != here)]
    from entrypoint.cli import main as bootstrap

    bootstrap()


if __name__ == "__main__":
    main()
