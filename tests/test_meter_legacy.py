"""JSON state files of earlier versions: imported once into the store, every value checked first.

The red-team items of issue 12 each have a case: quantities ``NaN``, ``Infinity``, ``1e400`` and
``-5``, a signalling NaN, deep nesting, duplicate buckets and members, ``"hour": true``, planted
``.tmp`` and ``.lock`` links. A refused file is left exactly as it was and no store is made."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ConfigurationError
from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.meter import Meter
from entrypoint.meter.hours import client_token
from entrypoint.meter.legacy import parse_state
from entrypoint.meter.opening import open_store

from .meter_support import Client, billed, child_env, rows, sends
from .support import KEYS, T0, FakeClock

PRODUCT = "prod-legacy"
INSTANCE = "0123456789abcdef0123456789abcdef"
H10 = int(T0) - 30 * 60
HOUR = 3600


def bucket(
    dimension: str, hour: int, quantity: str, state: str, record: str | None = None
) -> dict[str, Any]:
    """A bucket exactly as the old meter wrote it (`Bucket.to_json`)."""
    return {
        "dimension": dimension,
        "hour": hour,
        "quantity": quantity,
        "token": client_token(INSTANCE, PRODUCT, dimension, hour),
        "state": state,
        "record_id": record,
    }


def document(*buckets: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "format": "marketplace-entrypoint-meter",
        "version": 1,
        "product_code": PRODUCT,
        "instance_id": INSTANCE,
        "buckets": list(buckets),
        **changes,
    }


def write(path: Path, data: dict[str, Any] | bytes) -> bytes:
    raw = data if isinstance(data, bytes) else json.dumps(data, indent=1).encode() + b"\n"
    path.write_bytes(raw)
    return raw


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Any:
    products = {PRODUCT: ProductBehavior(dimensions=("users", "gb"))}
    with Emulator(products=products, key_factory=KEYS.factory, clock=clock) as em:
        yield em


def meter(emulator: Emulator, clock: FakeClock, path: Path) -> Meter:
    return Meter(
        product_code=PRODUCT,
        dimensions=("users", "gb"),
        state_file=path,
        client=Client(emulator),
        clock=clock,
        monotonic=clock,
        sleep=clock.sleep,
        uniform=lambda _lo, hi: hi,
    )


def test_a_state_file_is_imported_once_with_its_tokens_and_states(
    emulator: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "meter.json"
    raw = write(
        path,
        document(
            bucket("users", H10 - 2 * HOUR, "4", "sent", "record-old"),
            bucket("users", H10 - HOUR, "2.5", "sealed"),
            bucket("gb", H10, "0.25", "open"),
        ),
    )
    first = meter(emulator, clock, path).start(preflight=False, background=False)
    (sent,) = first.start_report.sent  # the sealed hour, sent with the old meter's token
    assert (sent.dimension, sent.quantity) == ("users", Decimal("2.5"))
    (call,) = sends(emulator)
    assert call.request["ClientToken"] == client_token(INSTANCE, PRODUCT, "users", H10 - HOUR)
    assert first.store.instance_id == INSTANCE
    assert [(d, q) for d, _, q in first.pending()] == [("gb", Decimal("0.25"))]
    first.add("gb", "0.75")
    first.close()
    assert billed(emulator) == [("users", H10 - HOUR, "2.5"), ("gb", H10, "1")]
    assert (tmp_path / "meter.json.imported.json").read_bytes() == raw  # kept, unchanged
    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    again = meter(emulator, clock, path).start(preflight=False, background=False)  # no re-import
    again.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "imported" in p.name) == [
        "meter.json.imported.json"
    ]


def test_processes_starting_together_import_once(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    write(path, document(bucket("users", H10, "3", "open")))
    script = (
        "import sys; from entrypoint.meter.opening import open_store\n"
        f"s = open_store(sys.argv[1], product_code='{PRODUCT}'); print(s.instance_id); s.close()"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    assert {out.strip() for out, _ in outputs} == {INSTANCE}
    assert rows(path) == [("users", H10, 3_000_000, "open")]
    assert [p.name for p in tmp_path.iterdir() if "imported" in p.name] == [
        "meter.json.imported.json"
    ]


BAD: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("nan", b'{"format": "marketplace-entrypoint-meter", "version": NaN}', "holds NaN"),
    (
        "infinity",
        document(buckets=[{**bucket("users", H10, "1", "open"), "quantity": "Infinity"}]),
        "is not one MeterUsage takes",
    ),
    (
        "infinity-number",
        b'{"format": "marketplace-entrypoint-meter", "version": 1, "x": Infinity}',
        "holds Infinity",
    ),
    ("minus-infinity", b'{"a": -Infinity}', "holds -Infinity"),
    (
        "1e400-string",
        document(buckets=[{**bucket("users", H10, "1", "open"), "quantity": "1e400"}]),
        "is not one MeterUsage takes",
    ),
    (
        "1e400-number",
        json.dumps(document(bucket("users", H10, "1", "open")))
        .replace('"quantity": "1"', '"quantity": 1e400')
        .encode(),
        "is not one MeterUsage takes",
    ),
    (
        "negative",
        document(buckets=[{**bucket("users", H10, "1", "open"), "quantity": "-5"}]),
        "is not one MeterUsage takes",
    ),
    (
        "nan-string",
        document(buckets=[{**bucket("users", H10, "1", "open"), "quantity": "NaN"}]),
        "is not one MeterUsage takes",
    ),
    (
        "snan",
        document(buckets=[{**bucket("users", H10, "1", "open"), "quantity": "sNaN"}]),
        "is not one MeterUsage takes",
    ),
    (
        "seven-decimals",
        document(buckets=[{**bucket("users", H10, "1", "open"), "quantity": "0.0000001"}]),
        "is not one MeterUsage takes",
    ),
    ("deep", b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "is nested too deeply"),
    (
        "duplicate-bucket",
        document(bucket("users", H10, "1", "open"), bucket("users", H10, "2", "open")),
        "has two buckets for 'users' in one hour",
    ),
    (
        "duplicate-member",
        b'{"format": "marketplace-entrypoint-meter", "format": "x"}',
        "repeats the member 'format'",
    ),
    (
        "hour-true",
        document(buckets=[{**bucket("users", H10, "1", "open"), "hour": True}]),
        "whose hour is not an hour",
    ),
    (
        "hour-float",
        document(buckets=[{**bucket("users", H10, "1", "open"), "hour": float(H10)}]),
        "whose hour is not an hour",
    ),
    (
        "hour-off",
        document(buckets=[{**bucket("users", H10, "1", "open"), "hour": H10 + 1}]),
        "whose hour is not an hour",
    ),
    (
        "state",
        document(buckets=[{**bucket("users", H10, "1", "open"), "state": "lost"}]),
        "unknown state",
    ),
    (
        "token",
        document(buckets=[{**bucket("users", H10, "1", "open"), "token": "t"}]),
        "foreign ClientToken",
    ),
    (
        "sent-no-record",
        document(bucket("users", H10, "1", "sent")),
        "sent bucket of 'users' without a record",
    ),
    ("extra-member", document(extra=1), "has unknown members"),
    (
        "bucket-member",
        document(buckets=[{**bucket("users", H10, "1", "open"), "x": 1}]),
        "not one the meter wrote",
    ),
    ("instance", document(instance_id="a b"), "instance_id that is not"),
    ("product", document(product_code="a b"), "product code"),
    ("utf8", b'{"format": "\xff"}', "is not JSON"),
    ("big", b'{"format": "' + b"x" * (4 * 1024 * 1024) + b'"}', "is larger than"),
]


@pytest.mark.parametrize(
    ("content", "reason"), [(c, r) for _, c, r in BAD], ids=[i for i, _, _ in BAD]
)
def test_a_hostile_state_file_is_refused_whole_and_left_as_it_was(
    tmp_path: Path, content: bytes | dict[str, Any], reason: str
) -> None:
    path = tmp_path / "meter.json"
    raw = write(path, content)
    with pytest.raises(ConfigurationError, match=reason) as caught:
        open_store(path, product_code=PRODUCT)
    assert "holds usage not yet reported" in caught.value.diagnosis()
    assert path.read_bytes() == raw
    assert not any(
        p.name.startswith(("meter.json.imported", ".meter.json.new")) for p in tmp_path.iterdir()
    )


@pytest.mark.parametrize(
    ("content", "reason"), [(c, r) for _, c, r in BAD], ids=[i for i, _, _ in BAD]
)
def test_the_parser_itself_raises_only_configuration_errors(
    content: bytes | dict[str, Any], reason: str
) -> None:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    with pytest.raises(ConfigurationError, match=reason):
        parse_state(raw, "meter.json")


def test_a_state_file_of_another_product_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    write(path, document(bucket("users", H10, "1", "open")))
    with pytest.raises(ConfigurationError, match="belongs to product prod-legacy, not prod-x"):
        open_store(path, product_code="prod-x")


def test_a_state_file_an_older_meter_still_holds_is_not_imported(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    raw = write(path, document(bucket("users", H10, "1", "open")))
    fd = os.open(path.with_name("meter.json.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running older meter holds
        with pytest.raises(ConfigurationError, match="still in use by an older meter"):
            open_store(path, product_code=PRODUCT)
    finally:
        os.close(fd)
    assert path.read_bytes() == raw
    open_store(path, product_code=PRODUCT).close()  # once it has stopped
    assert rows(path) == [("users", H10, 1_000_000, "open")]


def test_a_planted_lock_link_is_refused_and_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    raw = write(path, document(bucket("users", H10, "1", "open")))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path.with_name("meter.json.lock").symlink_to(victim)
    with pytest.raises(ConfigurationError, match=r"meter\.json\.lock is a symbolic link"):
        open_store(path, product_code=PRODUCT)
    assert (path.read_bytes(), victim.read_bytes()) == (raw, b"precious")


def test_a_planted_tmp_link_is_never_written_through(tmp_path: Path) -> None:
    """The old meter wrote `.<name>.tmp` and renamed it; the store never uses that name."""
    path = tmp_path / "meter.json"
    write(path, document(bucket("users", H10, "1", "open")))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path.with_name(".meter.json.tmp").symlink_to(victim)
    store = open_store(path, product_code=PRODUCT, dimensions=("users",))
    store.add("users", 1, H10)
    store.close()
    assert victim.read_bytes() == b"precious"
