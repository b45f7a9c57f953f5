"""How the image tests decide that another architecture can run here, on fake binfmt_misc trees.

Fast (no root): the real state is read by the image tests themselves, which fail in CI without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .emulation import binfmt_entry, emulation_missing, guest_argv, host_arch

INTERPRETER = "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
# What the kernel shows for Debian's qemu-user-static entry once registered (flags OPF).
ENTRY = f"""enabled
interpreter {INTERPRETER}
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
FOREIGN = "arm64" if host_arch() != "arm64" else "amd64"


def binfmt(tmp_path: Path, entry: str | None = ENTRY, *, mounted: bool = True) -> Path:
    if mounted:
        (tmp_path / "register").touch()
        (tmp_path / "status").write_text("enabled\n")
    if entry is not None:
        cpu = {"arm64": "aarch64", "amd64": "x86_64"}[FOREIGN]
        (tmp_path / f"qemu-{cpu}").write_text(entry.replace("aarch64", cpu))
    return tmp_path


def test_a_registered_entry_with_the_fix_binary_flag_runs(tmp_path: Path) -> None:
    tree = binfmt(tmp_path)
    assert emulation_missing(FOREIGN, tree) is None
    entry = binfmt_entry(FOREIGN, tree)
    assert entry is not None
    assert (entry.enabled, entry.flags) == (True, "POF")


def test_this_machines_own_architecture_needs_nothing(tmp_path: Path) -> None:
    assert emulation_missing(host_arch(), tmp_path) is None


NOT_MOUNTED = (
    r"binfmt_misc is not mounted at .*, so \w+ binaries cannot run; run `make emulation` as "
    r"root \(apt-get install qemu-user-static first\)"
)
NO_FIX_BINARY = r"lacks the F flag \(flags 'PO'\): its interpreter \S+ is not found inside a chroot"


@pytest.mark.parametrize(
    ("entry", "mounted", "reason"),
    [
        (None, False, NOT_MOUNTED),
        (None, True, r"no binfmt_misc entry qemu-\w+ for \w+; run `make emulation`"),
        (ENTRY.replace("enabled", "disabled"), True, r"binfmt_misc entry qemu-\w+ is disabled"),
        (ENTRY.replace("POF", "PO"), True, NO_FIX_BINARY),
    ],
    ids=["not-mounted", "not-registered", "disabled", "no-fix-binary-flag"],
)
def test_what_is_missing_is_said(
    tmp_path: Path, entry: str | None, mounted: bool, reason: str
) -> None:
    missing = emulation_missing(FOREIGN, binfmt(tmp_path, entry, mounted=mounted))
    assert missing is not None
    assert re.search(reason, missing), missing


def test_the_emulators_argv_is_the_guests(tmp_path: Path) -> None:
    tree = binfmt(tmp_path)
    cpu = {"arm64": "aarch64", "amd64": "x86_64"}[FOREIGN]
    interpreter = INTERPRETER.replace("aarch64", cpu)
    shown = [interpreter, "/usr/bin/tini", "tini", "--", "marketplace-entrypoint"]
    assert guest_argv(shown, tree) == ["tini", "--", "marketplace-entrypoint"]
    native = ["tini", "--", "marketplace-entrypoint"]
    assert guest_argv(native, tree) == native
