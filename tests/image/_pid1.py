"""Become a container's PID 1: set up its mounts, enter its root, drop to its user, exec its init.

`tests.image.run` starts ``unshare --mount ... _pid1.py prepare SPEC``; this does what a container
runtime (runc) does before it execs the image's ENTRYPOINT, and nothing more:

``prepare`` (in a new mount namespace, still in the host's PID namespace, so that the ``mount``
commands it runs use no PID of the container's namespace):

1. bind the image's root file system onto itself and, for ``read_only``, remount it read-only
   (``docker run --read-only``, ECS ``readonlyRootFilesystem``, Kubernetes
   ``readOnlyRootFilesystem``);
2. mount a ``/dev`` tmpfs holding only the device nodes runc gives every container (null, zero,
   full, random, urandom, tty) and the ``fd``/``stdin``/``stdout``/``stderr`` links, and any
   tmpfs the test asked for;
3. exec ``unshare --pid --fork --kill-child --mount-proc=ROOT/proc _pid1.py enter SPEC``.

``enter`` (PID 1 of the new PID namespace, with a fresh /proc): ``chroot``, ``chdir`` to the
image's WorkingDir, clear supplementary groups, set the GID and UID (the image's USER or the
test's), then ``execvpe`` the ENTRYPOINT + CMD with exactly the given environment, searching the
*image's* PATH as runc does. From then on this process is the image's init (tini), still PID 1,
and the next process it starts is PID 2. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1"}
LINKS["stderr"] = "/proc/self/fd/2"


# The host's util-linux, by absolute path: PID 1's environment is empty.
MOUNT = shutil.which("mount") or "/usr/bin/mount"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"


def mount(*args: str) -> None:
    subprocess.run([MOUNT, *args], check=True)


def prepare(spec_file: str, spec: dict[str, Any]) -> NoReturn:
    root = spec["root"]
    mount("--make-rprivate", "/")
    mount("--bind", root, root)
    if spec["read_only"]:
        mount("-o", "remount,bind,ro", root)
    dev = f"{root}/dev"
    mount("-t", "tmpfs", "-o", "nosuid,noexec,mode=0755,size=64k", "tmpfs", dev)
    for name in DEVICES:
        Path(dev, name).touch()
        mount("--bind", f"/dev/{name}", f"{dev}/{name}")
    for name, target in LINKS.items():
        Path(dev, name).symlink_to(target)
    for path in spec.get("tmpfs", []):
        mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "tmpfs", f"{root}{path}")
    os.execv(  # noqa: S606 - becoming the next step is the point
        UNSHARE,
        [
            UNSHARE,
            "--pid",
            "--fork",
            "--kill-child",
            f"--mount-proc={root}/proc",
            sys.executable,
            "-I",
            __file__,
            "enter",
            spec_file,
        ],
    )


def enter(spec: dict[str, Any]) -> NoReturn:
    if os.getpid() != 1:
        sys.exit(f"_pid1: expected to be PID 1 of a new PID namespace, am {os.getpid()}")
    os.chroot(spec["root"])
    os.chdir(spec["working_dir"])
    os.setgroups([])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])  # noqa: S606 - becoming the image's init
    except OSError as exc:
        # What a runtime reports when the ENTRYPOINT cannot start (docker exits 127 or 126).
        print(f"_pid1: cannot exec {argv[0]!r}: {exc}", file=sys.stderr)
        sys.exit(127)


def main() -> None:
    step, spec_file = sys.argv[1:3]
    spec = json.loads(Path(spec_file).read_text())
    if step == "prepare":
        prepare(spec_file, spec)
    enter(spec)


if __name__ == "__main__":
    main()
