"""``marketplace-entrypoint``, the console script: the bootstrap in an isolated interpreter.

The image's launcher starts Python with ``-I`` (docker/launcher.py); pip writes console scripts
with a plain ``#!python`` line, which cannot carry it, so `main` re-executes the interpreter
under ``-I`` before anything else is imported (`entrypoint.process.isolate`), then runs the
command line (`entrypoint.cli.main`).
"""

from __future__ import annotations

from .process import isolate

# typing.TYPE_CHECKING, without importing typing here (mypy takes the name as the same constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["main"]


def main() -> NoReturn:
    """The console script: isolated first, then the command line."""
    isolate()
    from .cli import main as command_line

    command_line()
