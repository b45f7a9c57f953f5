"""The emulator's state: inspected, exported, reset, and journalled across restarts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from entrypoint import ExitCode
from entrypoint.emulator import Emulator, ProductBehavior
from entrypoint.emulator.cli import parse_customer, parse_product
from entrypoint.emulator.persistence import JournalError

from .support import KEYS, T0, FakeClock, base_env, metering_client, run_cli

PRODUCT = "prod-state"


def start(journal: Path | None = None, clock: FakeClock | None = None) -> Emulator:
    return Emulator(
        products={PRODUCT: ProductBehavior(dimensions=("users",))},
        key_factory=KEYS.factory,
        clock=clock or FakeClock(),
        state_file=journal,
    ).start()


def meter(emulator: Emulator, quantity: int = 3, token: str | None = None) -> str:
    params: dict[str, Any] = {
        "ProductCode": PRODUCT,
        "Timestamp": T0 - 60,
        "UsageDimension": "users",
        "UsageQuantity": quantity,
    }
    if token is not None:
        params["ClientToken"] = token
    return str(metering_client(emulator).meter_usage(**params)["MeteringRecordId"])


def http(emulator: Emulator, method: str, path: str) -> tuple[int, Any]:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(emulator.url + path, method=method, data=data)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- inspect, export, reset -----------------------------------------------------------------------


def test_export_lists_every_record_with_its_status() -> None:
    with start() as emulator:
        record_id = meter(emulator, 3)
        with pytest.raises(ClientError):
            meter(emulator, 4)
        exported = emulator.export()
    assert exported["billed"] == 1
    assert [(r["status"], r["billed"], r["quantity"]) for r in exported["records"]] == [
        ("Success", True, "3"),
        ("DuplicateRequest", False, "4"),
    ]
    assert exported["records"][0]["record_id"] == record_id
    assert exported["products"][PRODUCT]["dimensions"] == ["users"]
    json.dumps(exported)  # JSON-ready


def test_state_over_http() -> None:
    with start() as emulator:
        meter(emulator)
        status, body = http(emulator, "GET", "/_emulator/state")
        assert status == 200
        assert body == emulator.export()
        assert http(emulator, "POST", "/_emulator/reset") == (200, {"reset": True})
        assert emulator.records() == []
        assert http(emulator, "GET", "/_emulator/nothing")[0] == 404


def test_reset_forgets_calls_and_records_but_keeps_products() -> None:
    with start() as emulator:
        first = meter(emulator, 3)
        emulator.reset()
        assert emulator.calls() == []
        assert emulator.records() == []
        assert meter(emulator, 4) != first  # the hour is free again
        assert PRODUCT in emulator.state.products


# -- the journal ----------------------------------------------------------------------------------


def test_records_survive_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    with start(journal) as emulator:
        record_id = meter(emulator, 3, token="token-1")
        before = emulator.export()["records"]
    with start(journal) as emulator:
        assert emulator.export()["records"] == before
        assert meter(emulator, 3, token="token-1") == record_id  # ClientToken remembered
        assert meter(emulator, 3) == record_id  # the hour rule remembered
        with pytest.raises(ClientError, match="DuplicateRequestException"):
            meter(emulator, 4)
        with pytest.raises(ClientError, match="IdempotencyConflictException"):
            meter(emulator, 5, token="token-1")
        assert len(emulator.records(billed=True)) == 1


def test_a_redeemed_registration_token_stays_redeemed_across_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    with start(journal) as emulator:
        customer = emulator.add_customer(PRODUCT, aws_account_id="111111111111")
        token = emulator.issue_registration_token(customer, token="tok-1")
        metering_client(emulator).resolve_customer(RegistrationToken=token.token)
    with start(journal) as emulator:
        customer = emulator.add_customer(PRODUCT, aws_account_id="111111111111")
        emulator.issue_registration_token(customer, token="tok-1")
        with pytest.raises(ClientError, match="ExpiredTokenException"):
            metering_client(emulator).resolve_customer(RegistrationToken="tok-1")


def test_reset_empties_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    with start(journal) as emulator:
        meter(emulator)
        emulator.reset()
    with start(journal) as emulator:
        assert emulator.records() == []


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    with start(journal) as emulator:
        meter(emulator)
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"kind":"usage","seq":2,"oper')  # the crash mid-write
    with start(journal) as emulator:
        assert len(emulator.records()) == 1
    assert journal.read_bytes() == whole


def test_damage_before_the_last_line_is_refused_with_its_line_number(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    with start(journal) as emulator:
        meter(emulator)
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join([lines[0], b"{garbage", *lines[1:]]))
    with pytest.raises(JournalError, match="line 2 is not a journal event"):
        start(journal)


def test_an_event_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    start(journal).stop()
    with journal.open("a") as handle:
        handle.write('{"kind": "refund", "amount": 1}\n')
    with pytest.raises(JournalError, match="line 2: unknown kind 'refund'"):
        start(journal)


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "notes.txt"
    journal.write_text('{"hello": "world"}\n')
    with pytest.raises(JournalError, match="not a version 1 emulator journal"):
        start(journal)


def test_the_command_line_refuses_a_damaged_journal(tmp_path: Path) -> None:
    journal = tmp_path / "emulator.jsonl"
    journal.write_text("not json\n")
    run = run_cli(["emulator", "--port", "0", "--state-file", str(journal)], base_env("http://x"))
    assert run.returncode == ExitCode.USAGE
    assert "line 1 is not a journal event" in run.last_line
    assert "Traceback" not in run.stderr


# -- command-line options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("p:dimensions=users+gb", ("p", {"dimensions": ("users", "gb")})),
        ("p:unprocessed=2", ("p", {"unprocessed": 2})),
    ],
)
def test_metering_product_options(spec: str, expected: tuple[str, dict[str, object]]) -> None:
    assert parse_product(spec) == expected


def test_customer_spec() -> None:
    arn = "arn:aws:license-manager::123456789012:license:l-0123"
    assert parse_customer(f"p:123456789012:identifier=c-1,license={arn},token=t,token-ttl=60") == (
        "p",
        "123456789012",
        {"identifier": "c-1", "license_arn": arn, "token": "t", "ttl": 60.0},
    )
    assert parse_customer("p:123456789012:unsubscribed")[2] == {"subscribed": False}


@pytest.mark.parametrize("spec", ["p", "p:12", "p:123456789012:colour=red", ":123456789012"])
def test_bad_customer_spec(spec: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the CLI turns any of these into a usage error
        parse_customer(spec)
