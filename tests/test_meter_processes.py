"""Real processes on one store, against the emulator over HTTP: prefork workers killed with
SIGKILL and restarted, sender failover, usage too old to send, a shell loop beside Python
workers. Simulated hours come from a `FileClock` that every process reads, so a run lives through
several hours in seconds; the emulator reads the same clock.

The proof is the emulator's billed records, against what the workers' adds returned: every add
that returned is billed exactly once, in the hour it returned; the only difference allowed is an
add that was in flight when its process was killed (begun, not returned: it may or may not have
committed), and the store itself accounts for those to the unit.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.meter import Meter
from entrypoint.meter.opening import open_store
from entrypoint.retry import Backoff

from .conftest import REPORT_LINES
from .meter_support import Client, FileClock, assert_never_refused, child_env, rows, sends
from .support import CONSOLE_SCRIPT, KEYS, T0

PRODUCT = "prod-prefork"
DIMENSIONS = ("users", "gb")
LEASE = 300.0  # simulated seconds: the longest a killed sender holds the task without sending
HOUR = 3600

WORKER = """
import os, random, sys, time
from entrypoint.meter import Meter
from entrypoint.retry import Backoff
from tests.meter_support import Client, FileClock
store, clock_file, url, seed, lease = sys.argv[1:6]
clock = FileClock(clock_file)
meter = Meter(product_code="prod-prefork", dimensions=["users", "gb"], state_file=store,
    client=Client(url), clock=clock, monotonic=clock, sleep=clock.sleep,
    lease_seconds=float(lease), backoff=Backoff(base=1.0, cap=5.0)).start(preflight=False)
chance = random.Random(int(seed))
os.write(1, b"started\\n")
while True:
    dimension, quantity = chance.choice(["users", "gb"]), chance.randint(1, 3)
    os.write(1, f"begin {dimension} {quantity}\\n".encode())
    hour = meter.add(dimension, quantity)
    os.write(1, f"end {dimension} {quantity} {int(hour.timestamp())}\\n".encode())
    time.sleep(chance.uniform(0, 0.003))
"""


@dataclass
class Worker:
    """One worker process and what its adds returned, read from its stdout as it runs."""

    process: subprocess.Popen[str]
    returned: list[tuple[str, int, int]] = field(default_factory=list)  # (dimension, hour, q)
    in_flight: tuple[str, int] | None = None
    started: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    @classmethod
    def run(cls, process: subprocess.Popen[str]) -> Worker:
        worker = cls(process)
        worker.reader = threading.Thread(target=worker._read, daemon=True)
        worker.reader.start()
        return worker

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                kind, *rest = line.split()
                if kind == "started":
                    self.started.set()
                elif kind == "begin":
                    self.in_flight = (rest[0], int(rest[1]))
                elif kind == "end" and self.in_flight is not None:
                    self.returned.append((rest[0], int(rest[2]), int(rest[1])))
                    self.in_flight = None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.reader is not None
        self.reader.join(timeout=30)  # everything it wrote before it died is read


class Prefork:
    """A task's worker processes on one store, started, killed and restarted at will."""

    def __init__(self, store: Path, clock: FileClock, emulator: Emulator) -> None:
        self.store, self.clock, self.emulator = store, clock, emulator
        self.workers: list[Worker] = []
        self.dead: list[Worker] = []
        self.seed = 0
        self.kills = 0

    def spawn(self) -> Worker:
        self.seed += 1
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(self.store),
                str(self.clock.path),
                self.emulator.url,
                str(self.seed),
                str(LEASE),
            ],
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        worker = Worker.run(process)
        self.workers.append(worker)
        return worker

    def kill(self, worker: Worker) -> None:
        worker.kill()
        self.workers.remove(worker)
        self.dead.append(worker)
        self.kills += 1

    def holder(self) -> Worker | None:
        """The worker holding the sender's lease (member ids carry the PID)."""
        try:
            store = open_store(self.store, product_code=PRODUCT, verify=False)
        except Exception:  # noqa: BLE001 - between a kill and a restart: no answer this time
            return None
        try:
            holder = store.holder(self.clock())
        finally:
            store.close()
        pid = int(holder.split(":")[2]) if holder else -1
        return next((w for w in self.workers if w.process.pid == pid), None)

    def everyone(self) -> list[Worker]:
        return [*self.dead, *self.workers]


def final_sender(store: Path, clock: FileClock, emulator: Emulator) -> Meter:
    return Meter(
        product_code=PRODUCT,
        dimensions=DIMENSIONS,
        state_file=store,
        client=Client(emulator),
        clock=clock,
        monotonic=clock,
        sleep=clock.sleep,
        lease_seconds=LEASE,
        backoff=Backoff(base=1.0, cap=5.0),
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, FileClock, Emulator]]:
    clock = FileClock(tmp_path / "clock", start=T0)
    products = {PRODUCT: ProductBehavior(dimensions=DIMENSIONS)}
    with Emulator(products=products, key_factory=KEYS.factory, clock=clock) as emulator:
        yield tmp_path / "volume" / "usage.db", clock, emulator


def account(
    task: Prefork, emulator: Emulator, store: Path
) -> tuple[dict[tuple[str, int], Decimal], int, Counter[str]]:
    """Check the emulator's billed records against what the workers' adds returned and what the
    store froze; returns (billed per dimension and hour, adds returned, quantity in flight)."""
    assert_never_refused(emulator)
    billed: dict[tuple[str, int], Decimal] = {}
    for record in emulator.records(billed=True):
        key = (record.dimension, int(record.hour))
        assert key not in billed, f"{key} billed twice"
        billed[key] = Decimal(record.quantity)
    returned: Counter[tuple[str, int]] = Counter()
    in_flight: Counter[str] = Counter()
    adds = 0
    for worker in task.everyone():
        for dimension, hour, quantity in worker.returned:
            returned[(dimension, hour)] += quantity
            adds += 1
        if worker.in_flight is not None:
            in_flight[worker.in_flight[0]] += worker.in_flight[1]
    for key, quantity in returned.items():
        assert billed.get(key, 0) >= quantity, f"{key}: {quantity} returned, {billed.get(key)}"
    kept = {(r.dimension, r.hour): r.micros for r in rows(store)}
    assert {r.state for r in rows(store)} == {"sent"}  # nothing pending, nothing lost
    for key, amount in billed.items():
        assert kept[key] == amount * 1_000_000  # AWS billed what the store froze
    for dimension in DIMENSIONS:
        extra = sum(q for (d, _), q in billed.items() if d == dimension) - sum(
            q for (d, _), q in returned.items() if d == dimension
        )
        assert 0 <= extra <= in_flight[dimension], (dimension, extra, in_flight)
    return billed, adds, in_flight


def test_prefork_workers_killed_at_random_lose_nothing_and_bill_nothing_twice(
    world: tuple[Path, FileClock, Emulator],
) -> None:
    store, clock, emulator = world
    task = Prefork(store, clock, emulator)
    for _ in range(8):
        task.spawn()
    for worker in task.workers:
        assert worker.started.wait(60), "a worker did not start"
    chance = random.Random(7)
    holder_kills = 0
    end = T0 + 4 * HOUR
    step = 0
    while clock() < end:
        time.sleep(0.02)
        clock.advance(30)  # 4 simulated hours in about 10 s of real time
        step += 1
        if step % 25 == 0:  # a kill about every half second, every fourth one the sender's
            holder = task.holder()
            victim = holder if step % 100 == 0 else chance.choice(task.workers)
            if victim is not None:
                holder_kills += victim is holder
                task.kill(victim)
                task.spawn()
    for worker in list(task.workers):
        task.kill(worker)
    # Everything the workers left: sent by one more process once their leases have lapsed.
    clock.advance(LEASE + 1)
    sender = final_sender(store, clock, emulator).start(preflight=False, background=False)
    sender.close()  # the last member: the current hour too
    clock.advance(2 * HOUR)  # usage carried into hours that had not begun
    final_sender(store, clock, emulator).start(preflight=False, background=False).close()

    billed, adds, in_flight = account(task, emulator, store)
    assert holder_kills >= 2  # the sender itself was killed, and another took over
    assert len({int(r.hour) for r in emulator.records(billed=True)}) >= 4
    REPORT_LINES.append(
        f"meter prefork: {adds} adds from {len(task.everyone())} worker processes "
        f"({task.kills} SIGKILLs, {holder_kills} of the sender) over 4 simulated hours; "
        f"{len(billed)} records billed, none twice; in flight when killed: {dict(in_flight)}"
    )


def spawn_worker(store: Path, clock: FileClock, emulator: Emulator, lease: float) -> Worker:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(store), str(clock.path), emulator.url, "1", str(lease)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = Worker.run(process)
    assert worker.started.wait(60)
    return worker


def test_the_sender_s_lease_passes_to_another_process_when_its_holder_is_killed(
    world: tuple[Path, FileClock, Emulator],
) -> None:
    store, clock, emulator = world
    task = Prefork(store, clock, emulator)
    first = spawn_worker(store, clock, emulator, LEASE)
    task.workers.append(first)
    deadline = time.monotonic() + 30
    while task.holder() is not first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert task.holder() is first
    second = spawn_worker(store, clock, emulator, LEASE)
    task.workers.append(second)
    task.kill(first)
    clock.set(T0 + HOUR)  # the 10:00 hour has ended; the killed holder's lease has lapsed
    deadline = time.monotonic() + 30
    while not sends(emulator) and time.monotonic() < deadline:
        time.sleep(0.05)
        clock.advance(10)
    assert task.holder() is second
    assert {r.hour for r in emulator.records(billed=True)} == {T0 - 30 * 60}
    task.kill(second)
    assert_never_refused(emulator)


def test_hours_older_than_six_hours_are_reported_lost_and_never_sent(
    world: tuple[Path, FileClock, Emulator],
) -> None:
    store, clock, emulator = world
    task = Prefork(store, clock, emulator)
    worker = spawn_worker(store, clock, emulator, LEASE)
    task.workers.append(worker)
    while not worker.returned:
        time.sleep(0.01)
    task.kill(worker)  # the task's only sender dies: nobody sends for 7 hours
    clock.advance(7 * HOUR)
    meter = final_sender(store, clock, emulator).start(preflight=False, background=False)
    lost = meter.start_report.failed
    assert lost
    assert all(f.dropped for f in lost)
    assert {f.error.code for f in lost} == {"TimestampOutOfBoundsException"}  # type: ignore[attr-defined]
    assert {why for *_, why in meter.lost()} == {"not reported within MeterUsage's 6 hours"}
    meter.close()
    assert sends(emulator) == []  # never sent
    status = subprocess.run(
        [str(CONSOLE_SCRIPT), "meter", "status"],
        env=child_env(MARKETPLACE_PRODUCT_CODE=PRODUCT, MARKETPLACE_METER_STORE=str(store)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"state": "expired"' in status.stdout
    assert {r.state for r in rows(store)} == {"expired"}  # kept, visible, never sent
    kept = sum(r.micros for r in rows(store)) // 1_000_000
    returned = sum(q for _, _, q in worker.returned)
    assert returned <= kept <= returned + (worker.in_flight[1] if worker.in_flight else 0)


SHELL_LOOP = """
i=0
while [ "$i" -lt 40 ]; do
  "$ME" meter add --dimension users --quantity 2 >> "$OUT" || exit 1
  i=$((i + 1))
done
"""

PYTHON_WORKER = """
import sys
from entrypoint.meter import Meter
meter = Meter(product_code="prod-prefork", dimensions=["users", "gb"], state_file=sys.argv[1],
    client=object(), lease_seconds=0.2).start(preflight=False, background=False)
hours = [int(meter.add("users", 3).timestamp()) for _ in range(300)]
hours += [int(meter.add("gb", "0.5").timestamp()) for _ in range(300)]
print(" ".join(map(str, hours)))
"""


def test_meter_add_from_a_shell_loop_interleaved_with_python_workers(
    tmp_path: Path, emulator_real: Emulator
) -> None:
    store = tmp_path / "volume" / "usage.db"
    out = tmp_path / "shell-hours"
    env = child_env(
        MARKETPLACE_PRODUCT_CODE=PRODUCT,
        MARKETPLACE_METER_STORE=str(store),
        MARKETPLACE_METER_DIMENSIONS="users,gb",
        ME=str(CONSOLE_SCRIPT),
        OUT=str(out),
    )
    shell = subprocess.Popen(["sh", "-c", SHELL_LOOP], env=env)  # noqa: S607 - the system shell
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", PYTHON_WORKER, str(store)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert shell.wait(timeout=120) == 0
    assert [w.returncode for w in workers] == [0, 0, 0]
    expected: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for output in outputs:
        hours = [int(h) for h in output.split()]
        for hour in hours[:300]:
            expected[("users", hour)] += 3
        for hour in hours[300:]:
            expected[("gb", hour)] += Decimal("0.5")
    from datetime import datetime

    for line in out.read_text().split():
        hour = int(datetime.fromisoformat(line).timestamp())
        expected[("users", hour)] += 2
    time.sleep(0.3)  # the workers' leases lapse
    sender = Meter(
        product_code=PRODUCT, dimensions=DIMENSIONS, state_file=store, client=Client(emulator_real)
    ).start(preflight=False, background=False)
    sender.close()  # no other member alive: every hour, the current one included
    billed = {
        (r.dimension, int(r.hour)): Decimal(r.quantity) for r in emulator_real.records(billed=True)
    }
    assert billed == expected
    assert sum(billed[k] for k in billed if k[0] == "users") == 3 * 300 * 3 + 40 * 2
    assert_never_refused(emulator_real)


@pytest.fixture
def emulator_real() -> Iterator[Emulator]:
    products = {PRODUCT: ProductBehavior(dimensions=DIMENSIONS)}
    with Emulator(products=products, key_factory=KEYS.factory) as emulator:
        yield emulator


def test_usage_of_a_task_is_counted_in_one_store_whatever_the_process(tmp_path: Path) -> None:
    """Two Python processes and the parent add to one dimension and hour: one bucket."""
    store = tmp_path / "usage.db"
    script = (
        "import sys; from entrypoint.meter.opening import open_store\n"
        f"s = open_store(sys.argv[1], product_code='{PRODUCT}', dimensions=['users'])\n"
        "[s.add('users', 1, 3600) for _ in range(2000)]; s.close()"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(store)], env=child_env())
        for _ in range(2)
    ]
    parent = open_store(store, product_code=PRODUCT, dimensions=["users"])
    for _ in range(2000):
        parent.add("users", 1, 3600)
    assert [c.wait(timeout=60) for c in children] == [0, 0]
    parent.close()
    assert rows(store) == [("users", 3600, 6000, "open")]


FORKED = """
import os, sys
from entrypoint import UsageError
from entrypoint.meter import Meter
def meter():
    return Meter(product_code="prod-prefork", dimensions=["users"], state_file=sys.argv[1],
        client=object(), clock=lambda: 7200.0 + 60)
def in_child(work):
    pid = os.fork()
    if pid == 0:
        try:
            work()
            os.write(1, b"child added\\n")
        except UsageError as error:
            os.write(1, f"child refused: {error.diagnosis()}\\n".encode())
        os._exit(0)
    os.waitpid(pid, 0)
parent = meter().start(preflight=False, background=False)
parent.add("users", 1)  # open when the process forks (a server that preloads its app)
in_child(lambda: parent.add("users", 1))  # the inherited connection
in_child(lambda: meter().start(preflight=False, background=False).add("users", 1))  # a new one
parent.add("users", 1)  # the parent's connection is as it was
parent.store.close()  # closed (not sent: this test has no Metering endpoint)
in_child(lambda: meter().start(preflight=False, background=False).add("users", 1))  # after close
print(sum(q for _, _, q in meter().start(preflight=False, background=False).pending()))
"""


def test_a_process_forked_while_the_store_was_open_is_refused_it(tmp_path: Path) -> None:
    """SQLite forbids a connection across fork(), and a child inherits SQLite's record of its
    parent's locks (sqlite.org/howtocorrupt.html, 2.6): a child forked while its parent had the
    store open is refused any store, with the remedy; one forked after it closed is fine."""
    store = tmp_path / "usage.db"
    run = subprocess.run(
        [sys.executable, "-c", FORKED, str(store)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == lines[1]
    assert lines[0].startswith("child refused: usage error: this process was forked while its ")
    assert "in post_fork, not at import with preload_app" in lines[0]
    assert lines[2:] == ["child added", "3"]
