"""Shards: each long-lived process's own file of the store, folded into the store as hours close.

A round of the sender is killed between each of its steps (a `SimulatedCrash` raised where the
next step would start, as a SIGKILL would stop it), and the next round must count nothing twice
and lose nothing; a shard whose owner was killed (a real process, SIGKILL) is folded in and
removed; a clean close folds the process's own shard in at once; planted, foreign and damaged
files at shard names are refused, naming them."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ConfigurationError
from entrypoint.meter import ledger
from entrypoint.meter.ledger import close_hours, collect, fold_own, pending
from entrypoint.meter.opening import open_store
from entrypoint.meter.shards import Shard
from entrypoint.meter.store import UsageStore

from .meter_support import SimulatedCrash, child_env, rows, shard_files
from .support import T0

PRODUCT = "prod-shards"
HOUR = 3600
H10 = int(T0) - 30 * 60
DIMENSIONS = ("users", "gb")


def opened(path: Path, *, shard: bool = True) -> UsageStore:
    return open_store(path, product_code=PRODUCT, dimensions=DIMENSIONS, shard=shard)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "usage.db"


@pytest.fixture
def sender(path: Path) -> Iterator[UsageStore]:
    store = opened(path, shard=False)
    yield store
    store.close()


def book(path: Path) -> dict[tuple[str, int], tuple[int, str]]:
    return {(r.dimension, r.hour): (r.micros, r.state) for r in rows(path)}


def test_a_process_adds_to_a_shard_of_its_own_and_folds_it_in_when_it_closes(path: Path) -> None:
    worker = opened(path)
    assert worker.shard is not None
    worker.add("users", 3, H10)
    (shard,) = shard_files(path)
    assert shard.name == f"usage.db-shard-{worker.shard.id}"
    assert sqlite3.connect(path).execute("SELECT count(*) FROM buckets").fetchone() == (0,)
    assert book(path) == {("users", H10): (3, "open")}
    fold_own(worker)
    worker.close()
    assert [p.name for p in path.parent.iterdir() if "shard" in p.name] == []
    assert book(path) == {("users", H10): (3, "open")}


def test_pending_sums_the_store_and_every_shard(path: Path, sender: UsageStore) -> None:
    first, second = opened(path), opened(path)
    first.add("users", 1, H10)
    second.add("users", 2, H10)
    sender.add("users", 4, H10)  # meter add: straight into the store
    second.add("gb", 5, H10 + HOUR)
    assert [(b.dimension, b.hour, b.micros) for b in pending(sender)] == [
        ("users", H10, 7),
        ("gb", H10 + HOUR, 5),
    ]
    first.close()
    second.close()


def test_closing_an_hour_folds_every_shard_in_and_carries_later_adds(
    path: Path, sender: UsageStore
) -> None:
    worker = opened(path)
    worker.add("users", 1, H10)
    worker.add("users", 2, H10 + HOUR)  # not closed yet: stays in the shard
    sealed = close_hours(sender, H10 + HOUR + 60, current_hour=False)
    assert [(b.key, b.micros) for b in sealed] == [(("users", H10), 1)]
    assert worker.add("users", 4, H10) == H10 + HOUR  # closed: carried
    assert worker.add("gb", 8, H10) == H10  # another dimension's 10:00 is still open
    assert book(path) == {
        ("users", H10): (1, "sealed"),
        ("gb", H10): (8, "open"),
        ("users", H10 + HOUR): (6, "open"),
    }
    worker.close()


def test_a_backdated_add_goes_to_its_own_hour_after_a_round(path: Path, sender: UsageStore) -> None:
    worker = opened(path)
    worker.add("users", 1, H10)
    close_hours(sender, H10 + 3 * HOUR, current_hour=False)
    assert worker.add("users", 2, H10 + HOUR) == H10 + HOUR  # 11:00 had no usage: not closed
    worker.close()


@pytest.mark.parametrize("step", ["fold", "delete"])
def test_a_round_killed_between_its_steps_counts_nothing_twice(
    path: Path, sender: UsageStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    workers = [opened(path), opened(path)]
    workers[0].add("users", 1, H10)
    workers[1].add("users", 2, H10)

    def crash(_self: object) -> Any:  # stands in for a context manager
        raise SimulatedCrash

    # fold: killed after the shards closed the hour, before the store folded it in;
    # delete: killed after the store folded and sealed it, before the shards let go of it.
    monkeypatch.setattr(
        UsageStore if step == "fold" else Shard, "transaction" if step == "fold" else "write", crash
    )
    with pytest.raises(SimulatedCrash):
        close_hours(sender, H10 + HOUR + 60, current_hour=False)
    monkeypatch.undo()
    expected = (3, "open") if step == "fold" else (3, "sealed")
    assert book(path) == {("users", H10): expected}
    assert [(b.key, b.micros) for b in pending(sender)] == [(("users", H10), 3)]
    # Meanwhile an add for the hour: carried if a shard closed it already (both did).
    assert workers[0].add("users", 5, H10) == H10 + HOUR
    (sealed,) = close_hours(sender, H10 + HOUR + 120, current_hour=False)
    assert (sealed.key, sealed.micros) == (("users", H10), 3)
    assert book(path) == {("users", H10): (3, "sealed"), ("users", H10 + HOUR): (5, "open")}
    for worker in workers:
        worker.close()


def test_a_clean_close_killed_before_its_shard_was_removed_counts_nothing_twice(
    path: Path, sender: UsageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = opened(path)
    worker.add("users", 7, H10)

    def crash(_path: Path) -> None:
        raise SimulatedCrash

    monkeypatch.setattr(ledger, "remove", crash)
    with pytest.raises(SimulatedCrash):
        fold_own(worker)  # folded and recorded as merged; the files are still there
    monkeypatch.undo()
    worker.close()
    assert len(shard_files(path)) == 1
    assert [(b.key, b.micros) for b in pending(sender)] == [(("users", H10), 7)]  # once
    close_hours(sender, H10 + HOUR + 60, current_hour=False)
    assert book(path) == {("users", H10): (7, "sealed")}
    assert shard_files(path) == []


KILLED = """
import sys, time
from entrypoint.meter.opening import open_store
store = open_store(sys.argv[1], product_code="prod-shards", dimensions=["users"], shard=True)
store.add("users", 11, int(sys.argv[2]))
print("added", flush=True)
time.sleep(60)
"""


def test_the_shard_of_a_killed_process_is_folded_in_and_removed(
    path: Path, sender: UsageStore
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KILLED, str(path), str(H10 + HOUR)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "added"
        (shard,) = shard_files(path)
        collect(sender)  # its owner is alive: left alone
        assert shard_files(path) == [shard]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    collect(sender)  # nobody owns it now: folded in whole, even its open hour, and removed
    assert shard_files(path) == []
    assert not any(p.name.startswith(shard.name) for p in path.parent.iterdir())
    assert book(path) == {("users", H10 + HOUR): (11, "open")}


def test_a_link_planted_at_a_shard_name_stops_the_round_naming_it(
    path: Path, sender: UsageStore
) -> None:
    victim = path.with_name("victim.db")
    victim.write_bytes(b"precious")
    planted = path.with_name("usage.db-shard-0123456789abcdef")
    planted.symlink_to(victim)
    with pytest.raises(ConfigurationError, match="shard-0123456789abcdef is a symbolic link"):
        close_hours(sender, H10 + HOUR, current_hour=False)
    assert victim.read_bytes() == b"precious"


def test_a_shard_of_another_store_is_refused(
    tmp_path: Path, path: Path, sender: UsageStore
) -> None:
    other = tmp_path / "other" / "usage.db"
    other.parent.mkdir()
    stranger = opened(other)
    stranger.add("users", 99, H10)
    (foreign,) = shard_files(other)
    shutil.copyfile(foreign, path.with_name(foreign.name))
    with pytest.raises(ConfigurationError, match="belongs to another store"):
        close_hours(sender, H10 + HOUR, current_hour=False)
    assert book(path) == {}
    stranger.close()


def test_a_damaged_shard_is_refused_and_nothing_is_sealed(path: Path, sender: UsageStore) -> None:
    worker = opened(path)
    worker.add("users", 5, H10)
    sender.add("gb", 1, H10)
    (shard,) = shard_files(path)
    tamper = sqlite3.connect(shard, isolation_level=None)
    tamper.execute("UPDATE buckets SET crc = crc + 1")  # its check value no longer matches
    tamper.close()
    with pytest.raises(ConfigurationError, match=r"shard-[0-9a-f]{16} is damaged"):
        close_hours(sender, H10 + HOUR, current_hour=False)
    assert sqlite3.connect(path).execute("SELECT state FROM buckets").fetchall() == [("open",)]
    worker.close()


def test_shards_are_made_and_removed_with_the_store_s_own_checks(path: Path) -> None:
    worker = opened(path)
    assert worker.shard is not None
    names = {p.name for p in path.parent.iterdir() if "shard" in p.name}
    base = f"usage.db-shard-{worker.shard.id}"
    assert {base, f"{base}-lock", f"{base}-owner"} <= names
    for name in names:
        assert path.with_name(name).stat().st_mode & 0o077 == 0, name
    worker.close()  # without folding: its owner lock is released, the sender will fold it
    assert path.with_name(base).exists()
