"""A damaged, truncated or hostile store is a clear error, never a silently different book.

Random bit flips and truncations of a real store, SQLite files that are not stores, stores with
a trigger, and rows written past the CHECK constraints: each either opens with every total
unchanged, or is refused with a `ConfigurationError` naming the file (exit 78). The 600 flips
are the issue's count (the JSON state file silently changed totals in 4 of 600)."""

from __future__ import annotations

import random
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from entrypoint import ConfigurationError
from entrypoint.meter.ledger import close_hours
from entrypoint.meter.opening import open_store
from entrypoint.meter.store import UsageStore

from .support import T0

PRODUCT = "prod-integrity"
H10 = int(T0) - 30 * 60
HOUR = 3600
STATES = ("open", "sealed", "sent", "refused", "expired")
CHECK = "is damaged: CHECK constraint failed in buckets"


def build(path: Path) -> None:
    """A store with buckets in every state, its WAL folded back (the file holds everything)."""
    store = open_store(path, product_code=PRODUCT, dimensions=("users", "gb", "hosts"))
    for k in range(6):
        store.add("users", 1_000_000 * (k + 1), H10 - k * HOUR)
        store.add("gb", 250_000 * (k + 1), H10 - k * HOUR)
    store.add("hosts", 7, H10 - 7 * HOUR)
    store.expire(H10 + 30 * 60)  # hosts: older than 6 hours
    sealed = close_hours(store, H10 - 2 * HOUR, current_hour=False)
    for bucket in sealed[:4]:
        store.mark_sent(bucket, f"record-{bucket.dimension}-{bucket.hour}")
    store.mark_refused(sealed[4], "DuplicateRequestException: another quantity")
    store.claim("meter:a", "meter", T0, 30)
    store.close()  # the last connection: the WAL is folded back and removed
    assert not path.with_name(path.name + "-wal").exists()


def totals(store: UsageStore) -> dict[tuple[str, int, str], Decimal]:
    return {(b.dimension, b.hour, b.state): b.quantity for b in store.buckets(STATES)}


def read(path: Path) -> dict[tuple[str, int, str], Decimal] | str:
    """What a long-lived opener (Meter.start, meter serve) sees, or the refusal."""
    try:
        store = open_store(path, product_code=PRODUCT)  # verify=True
    except ConfigurationError as error:
        return error.reason if str(path) in error.reason else f"unnamed: {error.reason}"
    try:
        return totals(store)
    except ConfigurationError as error:
        return error.reason
    finally:
        store.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "usage.db"
    build(path)
    return path


def fresh_copy(pristine: Path, directory: Path) -> Path:
    for stale in directory.glob("usage.db*"):
        stale.unlink()
    copy = directory / "usage.db"
    shutil.copyfile(pristine, copy)
    copy.chmod(0o600)
    return copy


@pytest.mark.parametrize("where", ["anywhere", "in-data"])
def test_600_random_bit_flips_never_change_a_total_silently(
    pristine: Path, tmp_path: Path, where: str
) -> None:
    """Anywhere in the file (most of it is free space), then only in its non-zero bytes (the
    header, the schema, the rows and their cells)."""
    expected = read(fresh_copy(pristine, tmp_path))
    assert isinstance(expected, dict)
    assert len(expected) == 13
    content = pristine.read_bytes()
    offsets = (
        range(len(content)) if where == "anywhere" else [i for i, b in enumerate(content) if b]
    )
    chance = random.Random(12)  # the same 600 flips every run
    refused = unchanged = 0
    for _ in range(600):
        copy = fresh_copy(pristine, tmp_path)
        offset, bit = chance.choice(offsets), chance.randrange(8)
        with copy.open("r+b") as handle:
            handle.seek(offset)
            handle.write(bytes([content[offset] ^ (1 << bit)]))
        seen = read(copy)
        if isinstance(seen, str):
            assert not seen.startswith("unnamed"), seen  # every refusal names the file
            refused += 1
        else:
            assert seen == expected, f"a flip of bit {bit} at byte {offset} changed the book"
            unchanged += 1
    assert refused > 0, (refused, unchanged)  # flips in the data were found and named
    print(f"600 flips {where}: {refused} refused, {unchanged} harmless")


@pytest.mark.parametrize("keep", [0, 1, 100, 4096, 4097, 8192, 12288, -4096, -1])
def test_a_truncated_store_is_refused_never_read_as_empty(
    pristine: Path, tmp_path: Path, keep: int
) -> None:
    (tmp_path / "again").mkdir()
    copy = fresh_copy(pristine, tmp_path)
    size = copy.stat().st_size
    with copy.open("r+b") as handle:
        handle.truncate(keep if keep >= 0 else size + keep)
    seen = read(copy)
    if isinstance(seen, dict):  # the cut missed every row: the same book, never a smaller one
        assert seen == read(fresh_copy(pristine, tmp_path / "again"))
    else:
        assert "is damaged" in seen, seen


def test_an_sqlite_file_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    with pytest.raises(ConfigurationError, match="is damaged: it is an SQLite database, but not"):
        open_store(path, product_code=PRODUCT)


def tamper(path: Path, *statements: str) -> None:
    """Change a store behind the package's back, past its CHECK constraints."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA ignore_check_constraints = ON")
    for statement in statements:
        connection.execute(statement)
    connection.close()


def test_a_store_with_a_trigger_is_refused_before_use(pristine: Path, tmp_path: Path) -> None:
    copy = fresh_copy(pristine, tmp_path)
    tamper(
        copy,
        "CREATE TRIGGER t AFTER INSERT ON buckets BEGIN "
        "UPDATE buckets SET micros = 0, negated = 0; END",
    )
    with pytest.raises(ConfigurationError, match="its schema is not the meter's"):
        open_store(copy, product_code=PRODUCT)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        # SQLite's quick_check finds rows that break a CHECK constraint ...
        ("UPDATE buckets SET micros = -5, negated = 5 WHERE state = 'open'", CHECK),
        ("UPDATE buckets SET micros = micros + 1 WHERE state = 'sealed'", CHECK),
        ("UPDATE buckets SET state = 'lost' WHERE state = 'open'", CHECK),
        ("UPDATE buckets SET hour = hour + 1 WHERE state = 'open'", CHECK),
        ("UPDATE buckets SET record_id = NULL WHERE state = 'sent'", CHECK),
        # ... and the rows' own check values find what no constraint can.
        (
            f"UPDATE buckets SET dimension = 'cpus' WHERE hour = {H10} AND dimension = 'gb'",  # noqa: S608 - our constant
            "fails its check value",
        ),
        ("UPDATE dimensions SET name = 'cpus' WHERE name = 'gb'", "declared dimension fails"),
        ("UPDATE meta SET instance_id = 'other'", "identity fails its check value"),
        ("UPDATE meta SET product_code = 'prod-free'", "identity fails its check value"),
        ("DELETE FROM meta", "has no identity"),
        ("PRAGMA user_version = 2", "schema version 2"),
        ("PRAGMA journal_mode = DELETE", "journal mode delete, not WAL"),
    ],
)
def test_values_written_past_the_constraints_are_refused(
    pristine: Path, tmp_path: Path, statement: str, reason: str
) -> None:
    copy = fresh_copy(pristine, tmp_path)
    tamper(copy, statement)
    with pytest.raises(ConfigurationError, match=reason) as caught:
        open_store(copy, product_code=PRODUCT)
    assert "holds usage not yet reported" in caught.value.diagnosis()


def test_the_constraints_refuse_what_meter_usage_cannot_take(tmp_path: Path) -> None:
    """SQLite itself (STRICT tables, CHECK) refuses NaN, negatives, fractions and booleans."""
    path = tmp_path / "usage.db"
    open_store(path, product_code=PRODUCT).close()
    connection = sqlite3.connect(path, isolation_level=None)
    row = "INSERT INTO buckets (dimension, hour, micros, negated, crc) VALUES (?, ?, ?, ?, 0)"
    for values in [
        ("users", H10, float("nan"), 0),
        ("users", H10, -1, 1),
        ("users", H10, 10**16, -(10**16)),
        ("users", H10, 1.5, -1.5),
        ("users", H10 + 1, 1, -1),
        ("users", "soon", 1, -1),
        ("users", H10, 1, -2),
        ("", H10, 1, -1),
    ]:
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(row, values)
    connection.close()
