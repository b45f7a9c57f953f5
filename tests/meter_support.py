"""Shared machinery of the meter suites: the emulator's client with injectable crashes, a clock
that several real processes share, and readers of what a store holds.

`FileClock` is simulated time in a file: the test moves it, and every process that reads it (a
worker, a sender, the emulator in the test process) sees the same instant. Real processes can
then live through several simulated hours in seconds of real time.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, NamedTuple

import botocore.session

from entrypoint.answers import MeterUsageAnswer
from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator
from entrypoint.metering import BotocoreMeteringClient, StaticCredentials

from .support import REPO

_SESSION = botocore.session.get_session()  # shared: a session costs ~50 ms to make


class SimulatedCrash(BaseException):
    """The process died here (a BaseException, so nothing in the meter can catch it)."""


class Client:
    """The real botocore client, with an optional crash before or after the N-th MeterUsage."""

    def __init__(self, emulator: Emulator | str) -> None:
        url = emulator if isinstance(emulator, str) else emulator.url
        self.inner = BotocoreMeteringClient(
            region="us-east-1",
            endpoint_url=url,
            credentials=StaticCredentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY),
            session=_SESSION,
        )
        self.calls = 0
        self.crash_before: int | None = None
        self.crash_after: int | None = None

    def meter_usage(self, **params: Any) -> MeterUsageAnswer:
        self.calls += 1
        if self.calls == self.crash_before:
            raise SimulatedCrash
        answer = self.inner.meter_usage(**params)
        if self.calls == self.crash_after:
            raise SimulatedCrash
        return answer


class FileClock:
    """Epoch seconds kept in a file, so that processes share one simulated time."""

    def __init__(self, path: Path | str, start: float | None = None) -> None:
        self.path = Path(path)
        if start is not None:
            self.set(start)

    def __call__(self) -> float:
        for _ in range(100):
            try:
                return float(self.path.read_text())
            except ValueError:  # caught between the write and the rename: never, but be sure
                time.sleep(0.001)
        raise AssertionError(f"{self.path} holds no time")

    def set(self, when: float) -> None:
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}")
        temporary.write_text(repr(float(when)))
        temporary.replace(self.path)

    def advance(self, seconds: float) -> None:
        self.set(self() + seconds)

    def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` of simulated time have passed (the test moves it)."""
        end = self() + seconds
        while self() < end:
            time.sleep(0.005)


class Row(NamedTuple):
    dimension: str
    hour: int
    micros: int
    state: str


def _select(path: Path, query: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def shard_files(store: Path) -> list[Path]:
    """The shards beside the store (``<store>-shard-<16 hex>``)."""
    pattern = re.compile(re.escape(store.name) + r"-shard-[0-9a-f]{16}")
    return sorted(p for p in store.parent.iterdir() if pattern.fullmatch(p.name))


def rows(store: Path) -> list[Row]:
    """The task's whole book, read with connections of its own: the store's buckets, with the
    usage still in shards (always open) added to the open ones."""
    book = {
        (d, h): Row(d, h, m, s)
        for d, h, m, s in _select(store, "SELECT dimension, hour, micros, state FROM buckets")
    }
    for shard in shard_files(store):
        for d, h, m in _select(shard, "SELECT dimension, hour, micros FROM buckets"):
            known = book.get((d, h))
            if known is None:
                book[(d, h)] = Row(d, h, m, "open")
            elif known.state == "open":
                book[(d, h)] = known._replace(micros=known.micros + m)
    return sorted(book.values(), key=lambda r: (r.hour, r.dimension))


def billed(emulator: Emulator) -> list[tuple[str, float, str]]:
    """(dimension, hour, quantity) of every record the emulator billed, in order."""
    return [(r.dimension, r.hour, r.quantity) for r in emulator.records(billed=True)]


def sends(emulator: Emulator) -> list[Any]:
    """The MeterUsage calls that were not DryRuns."""
    return [c for c in emulator.calls("MeterUsage") if not c.request.get("DryRun")]


def assert_never_refused(emulator: Emulator) -> None:
    assert {r.status for r in emulator.records()} <= {"Success"}, emulator.records()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a helper process that imports this repository's tests."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": str(REPO),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }
