"""The meter's state file: unsent usage on disk, written atomically, owned by one process.

Guarantees:

* `StateFile.save` never leaves a partial file: it writes a temporary file beside the state
  file, ``fsync``s it, renames it over the state file and ``fsync``s the directory (POSIX
  ``rename`` is atomic). After a crash the file holds the last completed save, whole.
* `StateFile.acquire` takes an exclusive ``flock`` on ``<file>.lock`` without waiting: two
  meters on one state file would report the same hours twice, so the second one is refused. The
  kernel releases the lock when the process dies, so a crash never leaves it stuck.
* `StateFile.load` refuses a file over `MAX_BYTES`, or one that is not a meter state file,
  naming the file; it never discards unsent usage silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from entrypoint.errors import ConfigurationError, one_line

__all__ = ["FORMAT", "MAX_BYTES", "StateFile"]

FORMAT = "marketplace-entrypoint-meter"
VERSION = 1
# 24 dimensions (AWS's limit per product) x 8 hours of buckets is a few kilobytes; anything near
# this size was not written by the meter.
MAX_BYTES = 4 * 1024 * 1024


class StateFile:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None

    # -- ownership ------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Own the state file, or `ConfigurationError` if another process does."""
        if self._lock_fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot open the meter's lock file {self.lock_path}: {exc.strerror or exc}",
                remedy="give the meter a writable directory for its state file",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigurationError(
                f"the meter state file {self.path} is in use by another process",
                remedy="run one meter per state file (one per task or pod)",
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    # -- contents -------------------------------------------------------------------------------
    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is none yet."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.damaged(f"cannot be read: {exc.strerror or exc}") from None
        if len(raw) > MAX_BYTES:
            raise self.damaged(f"is larger than {MAX_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise self.damaged(f"is not JSON ({one_line(exc, 80)})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self.damaged("is not a meter state file")
        if data.get("version") != VERSION:
            raise self.damaged(f"has version {one_line(data.get('version'), 20)}, not {VERSION}")
        return data

    def save(self, state: Mapping[str, Any]) -> None:
        """Replace the file with ``state``, atomically and durably."""
        document = {"format": FORMAT, "version": VERSION, **state}
        payload = json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            temporary.replace(self.path)
            _fsync_directory(self.path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise self.damaged(f"cannot be written: {exc.strerror or exc}") from None

    def damaged(self, what: str) -> ConfigurationError:
        """The error for a state file that cannot be used, saying why and what to do."""
        return ConfigurationError(
            f"the meter state file {self.path} {what}",
            remedy="it holds usage not yet reported: fix it, or move it aside to start afresh",
        )


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
