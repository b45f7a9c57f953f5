"""Foreign-architecture images under QEMU user-mode emulation, through the kernel's binfmt_misc.

An arm64 image on an amd64 machine (and the other way round) runs as it would on its own
hardware when the kernel knows to hand the foreign ELF binaries to ``qemu-<cpu>-static``: a
binfmt_misc entry, registered with the ``F`` flag ("fix binary": the kernel opens the interpreter
at registration, so it is found inside a chroot or another mount namespace, where the host's
/usr/bin is not visible). Debian's ``qemu-user-static`` ships such entries as
``/usr/lib/binfmt.d/qemu-<cpu>.conf`` (flags ``OPF``); ``make emulation`` (run by .ci/run) mounts
binfmt_misc and writes the entry to its ``register`` file (Documentation/admin-guide/binfmt-misc
in the kernel's tree). This module only reads that state and says what is missing.

The ``P`` flag ("preserve argv[0]") makes the kernel start the interpreter as
``INTERPRETER FULL-PATH ARGV0 ARGS...``: what ``/proc/<pid>/cmdline`` then shows. `guest_argv`
gives back the argv the emulated program itself sees.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# OCI architecture names (as in --platform linux/<arch>) -> QEMU's CPU names.
QEMU_CPU = {"amd64": "x86_64", "arm64": "aarch64"}
_MACHINE = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_arch() -> str:
    """This machine's architecture as OCI spells it (``amd64``, ``arm64``)."""
    machine = platform.machine().lower()
    return _MACHINE.get(machine, machine)


@dataclass(frozen=True)
class BinfmtEntry:
    name: str
    enabled: bool
    interpreter: str
    flags: str


def binfmt_entry(arch: str, binfmt: Path = BINFMT) -> BinfmtEntry | None:
    """The registered binfmt_misc entry for ``arch``'s QEMU, or None."""
    name = f"qemu-{QEMU_CPU.get(arch, arch)}"
    try:
        lines = (binfmt / name).read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    return BinfmtEntry(
        name=name,
        enabled=bool(lines) and lines[0] == "enabled",
        interpreter=fields.get("interpreter", ""),
        flags=fields.get("flags:", fields.get("flags", "")).strip(),
    )


def emulation_missing(arch: str, binfmt: Path = BINFMT) -> str | None:
    """Why ``arch`` binaries cannot run here, or None when they can (natively or emulated)."""
    if arch == host_arch():
        return None
    remedy = "run `make emulation` as root (apt-get install qemu-user-static first)"
    if not (binfmt / "register").exists():
        return f"binfmt_misc is not mounted at {binfmt}, so {arch} binaries cannot run; {remedy}"
    entry = binfmt_entry(arch, binfmt)
    if entry is None:
        return f"no binfmt_misc entry qemu-{QEMU_CPU.get(arch, arch)} for {arch}; {remedy}"
    if not entry.enabled:
        return f"binfmt_misc entry {entry.name} is disabled; {remedy}"
    if "F" not in entry.flags:
        return (
            f"binfmt_misc entry {entry.name} lacks the F flag (flags {entry.flags!r}): its "
            f"interpreter {entry.interpreter} is not found inside a chroot; {remedy}"
        )
    return None


def guest_argv(argv: list[str], binfmt: Path = BINFMT) -> list[str]:
    """The argv a program sees, from the ``/proc/<pid>/cmdline`` of a process that may be QEMU
    started by binfmt_misc with the P flag (``INTERPRETER FULL-PATH ARGV0 ARGS...``)."""
    if len(argv) >= 3 and argv[0] in _interpreters(binfmt):
        return argv[2:]
    return argv


def _interpreters(binfmt: Path) -> frozenset[str]:
    found = set()
    for arch in QEMU_CPU:
        entry = binfmt_entry(arch, binfmt)
        if entry is not None and "P" in entry.flags:
            found.add(entry.interpreter)
    return frozenset(found)
