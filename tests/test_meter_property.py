"""No record lost or doubled, whatever happens: a property test of `Meter` against the emulator.

Hypothesis draws sequences of usage, time passing (with the hourly sends a running meter makes),
crashes (between steps, or in the middle of a send, before or after AWS recorded it) and clean
restarts. Whatever the sequence, once everything is sent: every dimension's billed total equals
the usage added, no (dimension, hour) is billed twice, and AWS never had to refuse a record.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.meter import Meter

from .meter_support import Client, SimulatedCrash
from .support import HOUR, KEYS, FakeClock
from .test_meter import PRODUCT, crash, new_meter

DIMENSIONS = ("users", "gb")

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(DIMENSIONS),
            st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False),
        ),
        st.tuples(st.just("advance"), st.integers(min_value=1, max_value=100)),
        st.tuples(st.just("crash")),
        st.tuples(st.just("crash_in_send"), st.booleans(), st.integers(min_value=1, max_value=2)),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)


class Run:
    def __init__(self, emulator: Emulator, clock: FakeClock, state: Path) -> None:
        self.emulator, self.clock, self.state = emulator, clock, state
        self.client = Client(emulator)
        self.meter = self._start()

    def _start(self) -> Meter:
        return new_meter(self.emulator, self.clock, self.state, self.client).start(
            preflight=False, background=False
        )

    def crash_and_restart(self) -> None:
        crash(self.meter, self.clock)
        self.client.crash_before = self.client.crash_after = None
        self.meter = self._start()

    def step(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "add":
            self.meter.add(action[1], action[2])
        elif kind == "advance":
            self.clock.advance(action[1] * 60)
            self.meter.send_due()  # what the background sender does at each hour's end
        elif kind == "crash":
            self.crash_and_restart()
        elif kind == "crash_in_send":
            _, after, nth = action
            target = self.client.calls + nth
            if after:
                self.client.crash_after = target
            else:
                self.client.crash_before = target
            try:
                self.meter.flush()
            except SimulatedCrash:
                self.crash_and_restart()
            else:  # fewer sends than nth: no crash happened; disarm it
                self.client.crash_before = self.client.crash_after = None
        else:  # a clean restart: shutdown flush, then start again
            self.meter.close()
            self.meter = self._start()

    def finish(self) -> None:
        """Shut down, then start once more two hours later to send usage carried forward."""
        self.meter.close()
        self.clock.advance(2 * HOUR)
        self.meter = self._start()
        self.meter.close()


@settings(max_examples=30, deadline=None)
@given(steps=steps)
def test_no_usage_is_lost_or_billed_twice(steps: list[tuple[Any, ...]]) -> None:
    clock = FakeClock()
    products = {PRODUCT: ProductBehavior(dimensions=DIMENSIONS)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Emulator(products=products, key_factory=KEYS.factory, clock=clock) as emulator,
    ):
        run = Run(emulator, clock, Path(tmp) / "meter.json")
        added: dict[str, Decimal] = defaultdict(Decimal)
        for action in steps:
            if action[0] == "add":
                added[action[1]] += action[2]
            run.step(action)
        run.finish()
        records = emulator.records()
        assert {r.status for r in records} <= {"Success"}, records
        billed = [r for r in records if r.billed]
        keys = [(r.dimension, r.hour) for r in billed]
        assert len(keys) == len(set(keys)), "an hour billed twice"
        for dimension in DIMENSIONS:
            total = sum(
                (Decimal(r.quantity) for r in billed if r.dimension == dimension), Decimal()
            )
            assert total == added[dimension], dimension
