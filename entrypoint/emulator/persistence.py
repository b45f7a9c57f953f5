"""The emulator's journal: every decision that changes its data, appended to a file, replayed on
start, so that a long local run loses nothing when the emulator restarts.

Format: JSON Lines. The first line is a header naming the format and version; then one line per
event: ``{"kind": "usage", ...}`` for each `UsageEntry` (every metering record and its status)
and ``{"kind": "resolved", "token": ...}`` for each registration token ResolveCustomer redeemed.
Configuration (products, customers, registration tokens) is not journalled: it comes from the
command line or the test each time.

Guarantees: each line is written with one ``write`` and ``fsync``-ed before the answer goes out,
so an answered request is on disk. A crash can leave at most a torn last line, which replay
ignores (and cuts off); damage anywhere else is refused with the line number, never skipped.
`rewrite` (reset) replaces the file atomically: temp file, ``fsync``, rename, ``fsync`` of the
directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "Journal", "JournalError"]

FORMAT = "marketplace-entrypoint-emulator-journal"
VERSION = 1
# A line longer than this was not written by us (a BatchMeterUsage entry is a few hundred bytes).
_MAX_LINE = 1024 * 1024


class JournalError(Exception):
    """The journal file cannot be used; the message names the file and line."""


class Journal:
    """An append-only JSON Lines file. Not thread-safe: callers hold the state lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: Any = None

    def read(self) -> list[dict[str, Any]]:
        """Every event in the file, in order; creates the file (with its header) if missing."""
        if not self.path.exists():
            self.rewrite([])
            return []
        data = self.path.read_bytes()
        complete, newline, torn = data.rpartition(b"\n")
        if torn:
            # A torn last line: its write never completed, so no answer was sent for it (each
            # answer waits for its line's fsync). Cut it off and carry on.
            self._truncate(len(complete) + len(newline))
        lines = complete.split(b"\n") if newline else []
        if not lines:
            self.rewrite([])
            return []
        events: list[dict[str, Any]] = []
        for number, raw in enumerate(lines, start=1):
            event = _parse_line(raw)
            if event is None:
                raise JournalError(f"{self.path}: line {number} is not a journal event")
            if number > 1:
                events.append(event)
            elif event.get("format") != FORMAT or event.get("version") != VERSION:
                raise JournalError(
                    f"{self.path}: not a version {VERSION} emulator journal "
                    f"(header {json.dumps(event)[:120]})"
                )
        return events

    def _truncate(self, size: int) -> None:
        with self.path.open("r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, event: Mapping[str, Any]) -> None:
        """Write one event durably (one write, then fsync)."""
        if self._file is None:
            self._file = self.path.open("ab")
        line = json.dumps(event, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def rewrite(self, events: list[Mapping[str, Any]]) -> None:
        """Replace the whole file atomically with a header and ``events``."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        header = {"format": FORMAT, "version": VERSION}
        with temporary.open("wb") as handle:
            for event in [header, *events]:
                handle.write(json.dumps(event, separators=(",", ":")).encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        _fsync_directory(self.path.parent)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > _MAX_LINE:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable: fsync the directory that holds the new name (POSIX)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
