"""Run an image's ENTRYPOINT + CMD as PID 1 of a new PID namespace, the way a runtime would.

``podman run`` does not work on these machines (../shared/image-testing.md), so this does the
part of a runtime the tests need, from the image's own configuration:

* a working container is made from the image (``buildah from``) and its root mounted;
* ENTRYPOINT, CMD, USER, Env and WorkingDir are read from the image (``buildah inspect``); a test
  may override CMD (``docker run IMAGE ARGS``), USER (``--user``), ENTRYPOINT (``--entrypoint``)
  and add variables (``-e``), as ECS task definitions and Kubernetes pod specs can;
* ``unshare --mount`` starts `tests.image._pid1`, which mounts /dev, optionally makes the root
  read-only, then runs ``unshare --pid --fork --kill-child --mount-proc`` to chroot, drop to the
  user and exec the ENTRYPOINT, so the image's init (tini) is PID 1 of the namespace.

The network namespace is the host's, so the Metering emulator on 127.0.0.1 is reachable. An image
of another architecture (arm64 on amd64) runs the same way: the kernel hands its binaries to QEMU
(binfmt_misc, tests/image/emulation.py), in the same PID namespace, as the same PIDs.
From outside, the test sees the namespace's processes by their host PIDs; ``NSpid`` in
``/proc/<pid>/status`` gives each one's PID inside the namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from .buildah import Buildah, ImageConfig
from .emulation import guest_argv

PID1 = Path(__file__).with_name("_pid1.py")


def children(pid: int) -> list[int]:
    """Direct children of host PID ``pid`` (empty once it has gone)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict (empty once the process has gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def cmdline(pid: int) -> list[str]:
    """The argv of host PID ``pid`` as the program sees it (under QEMU emulation too)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return guest_argv([part.decode("utf-8", "replace") for part in raw.split(b"\0")[:-1]])


def namespace_pid(pid: int) -> int:
    """The PID of host process ``pid`` inside its own (innermost) PID namespace."""
    return int(status(pid)["NSpid"].split()[-1])


def in_root(root: Path, path: str) -> Path:
    """Where ``path`` of the container is on the host: symbolic links are resolved inside
    ``root``, never on the host (Debian's /var/run is a link to /run, which on the host is the
    host's /run). Missing trailing components are kept as they are."""
    current = root
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for hops in range(len(parts) + 40):
        if not parts:
            return current
        name = parts.pop(0)
        candidate = current / name if name != ".." else max(current.parent, root)
        if candidate.is_symlink():
            assert hops < 40, f"too many symbolic links under {root} resolving {path}"
            target = str(candidate.readlink())
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            current = root if target.startswith("/") else current
            continue
        current = candidate
    raise AssertionError(f"too many symbolic links under {root} resolving {path}")


def resolve_user(root: Path, user: str) -> tuple[int, int, str]:
    """USER as a runtime resolves it in the image: ``uid[:gid]`` or names from its /etc/passwd
    and /etc/group. Returns UID, GID and the HOME a runtime would set."""
    name, _, group = user.partition(":")
    name = name or "0"
    passwd = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines() if line]
    entry = next((e for e in passwd if name in (e[0], e[2])), None)
    if name.isdigit():
        uid = int(name)
    elif entry is not None:
        uid = int(entry[2])
    else:
        raise AssertionError(f"user {name!r} is not in the image's /etc/passwd")
    if group.isdigit():
        gid = int(group)
    elif group:
        groups = [line.split(":") for line in (root / "etc/group").read_text().splitlines() if line]
        gid = int(next(g[2] for g in groups if g[0] == group))
    else:
        gid = int(entry[3]) if entry is not None else 0
    home = entry[5] if entry is not None else "/"
    return uid, gid, home


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def last_line(self) -> str:
        lines = self.stderr_lines
        return lines[-1] if lines else ""


class Container:
    """One run of an image. Use as a context manager: the working container is removed after."""

    def __init__(
        self,
        buildah: Buildah,
        image: str,
        *,
        env: Mapping[str, str],
        cmd: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        user: str | None = None,
        read_only: bool = True,
        tmpfs: Sequence[str] = (),
        prepare: Callable[[Path], None] | None = None,
    ) -> None:
        self.buildah = buildah
        self.image = image
        self.config: ImageConfig = buildah.config(image)
        self.argv = [
            *(self.config.entrypoint if entrypoint is None else entrypoint),
            *(self.config.cmd if cmd is None else cmd),
        ]
        self.user = self.config.user if user is None else user
        self._extra_env = dict(env)
        self.read_only = read_only
        self.tmpfs = list(tmpfs)
        self._prepare = prepare
        self.id = ""
        self.root = Path()
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.uid = self.gid = -1
        self._init_pid = 0
        self._scratch = tempfile.TemporaryDirectory(prefix="mpe-run-")
        self._out = Path(self._scratch.name) / "stdout"
        self._err = Path(self._scratch.name) / "stderr"

    def __enter__(self) -> Self:
        self.id = self.buildah("from", "--pull=never", "--quiet", self.image).strip()
        self.root = Path(self.buildah("mount", self.id).strip())
        if self._prepare is not None:
            self._prepare(self.root)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                # SIGKILL to a PID namespace's init ends every process in it. (unshare's
                # --kill-child cannot be relied on: the kernel clears the parent-death signal
                # when PID 1 drops to the image's user.)
                if self._init_pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self._init_pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(timeout=30)
        finally:
            subprocess.run(
                [*self.buildah.base_args, "rm", self.id], capture_output=True, check=False
            )
            self._scratch.cleanup()

    def start(self) -> Self:
        """Start the ENTRYPOINT + CMD as PID 1, in the background."""
        uid, gid, home = resolve_user(self.root, self.user)
        self.uid, self.gid = uid, gid
        # A runtime's environment: the image's Env, HOME from the user's passwd entry, a
        # HOSTNAME, then what the task definition sets (which wins).
        env: dict[str, str] = {"HOSTNAME": "marketplace-test", "HOME": home}
        for entry in self.config.env:
            name, _, value = entry.partition("=")
            env[name] = value
        env.update(self._extra_env)
        self.env = env
        spec = {
            "root": str(self.root),
            "read_only": self.read_only,
            "tmpfs": self.tmpfs,
            "working_dir": self.config.working_dir,
            "uid": uid,
            "gid": gid,
            "argv": self.argv,
            "env": env,
        }
        spec_file = Path(self._scratch.name) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-I",
            str(PID1),
            "prepare",
            str(spec_file),
        ]
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        return self

    def run(self, timeout: float = 120) -> Finished:
        """Start and wait for the end."""
        return self.start().wait(timeout)

    def wait(self, timeout: float = 120) -> Finished:
        assert self.process is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"{self.argv} did not finish in {timeout}s; stderr:\n{self._err.read_text()}"
            ) from None
        return Finished(
            self.process.returncode,
            self._out.read_text(errors="replace"),
            self._err.read_text(errors="replace"),
        )

    def output(self) -> tuple[str, str]:
        """What the container has printed so far (stdout, stderr)."""
        return self._out.read_text(errors="replace"), self._err.read_text(errors="replace")

    @property
    def init_pid(self) -> int:
        """Host PID of the namespace's PID 1: the grandchild of the process we started (which
        runs ``mount`` children first, then becomes ``unshare --pid --fork``)."""
        if self._init_pid:
            return self._init_pid
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pid in children(self.process.pid):
                if status(pid).get("NSpid", "").split()[1:] == ["1"]:
                    self._init_pid = pid
                    return pid
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"PID 1 never appeared; stderr:\n{self.output()[1]}")

    def wait_for_workload(self, argv: Sequence[str], timeout: float = 60) -> int:
        """Host PID of PID 1's child once it has exec'd ``argv`` (the CMD)."""
        init = self.init_pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in children(init):
                if cmdline(pid) == list(argv):
                    return pid
            assert self.process is not None
            if self.process.poll() is not None:
                out, err = self.output()
                raise AssertionError(
                    f"the container exited {self.process.returncode} before running {argv}\n"
                    f"stdout:\n{out}\nstderr:\n{err}"
                )
            time.sleep(0.05)
        raise AssertionError(f"{argv} was not running after {timeout}s:\n{self.output()[1]}")

    def signal_init(self, signum: int = signal.SIGTERM) -> None:
        """What ``docker stop`` / ECS StopTask / a pod deletion does: signal the container's PID
        1 from outside its namespace."""
        os.kill(self.init_pid, signum)
