"""Every Metering operation through the AWS CLI (PyPI ``awscli``), unmodified, against the emulator.

The CLI is pointed at the emulator only by the standard endpoint variable,
``AWS_ENDPOINT_URL_MARKETPLACE_METERING``. It takes about half a second to start, so the
scenarios run once, concurrently, in a module fixture; each test then asserts one rule on what
its scenario printed and what the emulator recorded. A scenario is a short sequence of CLI
invocations whose order matters (a record, then its duplicate).

The CLI ships its own copy of botocore, older than the SDK's: its MeterUsage has no decimal
quantities and requires AllocatedUsageQuantity, so these scenarios use whole quantities.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from entrypoint import verify_signature
from entrypoint.emulator import (
    EMULATOR_ACCESS_KEY_ID,
    EMULATOR_SECRET_ACCESS_KEY,
    Emulator,
    ProductBehavior,
)

from .support import KEYS

AWS = Path(sys.executable).with_name("aws")
PRODUCT = "prod-cli"
SAAS = "prod-cli-saas"
ALICE, BOB, CAROL = "111111111111", "222222222222", "333333333333"
# The CLI runs in real time, so its timestamps are real: a minute ago, in the current hour or
# the one before (each scenario uses its own dimension, so the hour does not matter).
NOW = time.time()


@dataclass(frozen=True)
class Invocation:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_code(self) -> str:
        marker = "An error occurred ("
        assert marker in self.stderr, self.stderr
        return self.stderr.split(marker, 1)[1].split(")", 1)[0]


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Cli:
    SERVICE = "meteringmarketplace"  # the AWS CLI's name for the service called

    def __init__(self, emulator: Emulator) -> None:
        self.env = {
            "PATH": "/usr/bin:/bin",
            "AWS_ENDPOINT_URL_MARKETPLACE_METERING": emulator.url,
            "AWS_DEFAULT_REGION": emulator.region,
            "AWS_ACCESS_KEY_ID": EMULATOR_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": EMULATOR_SECRET_ACCESS_KEY,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
        }

    def __call__(self, operation: str, *args: str) -> Invocation:
        done = subprocess.run(
            [str(AWS), self.SERVICE, operation, *args, "--output", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Invocation(done.returncode, done.stdout, done.stderr)

    def meter(self, dimension: str, quantity: int, *extra: str) -> Invocation:
        return self(
            "meter-usage",
            "--product-code",
            PRODUCT,
            "--timestamp",
            iso(NOW - 60),
            "--usage-dimension",
            dimension,
            "--usage-quantity",
            str(quantity),
            *extra,
        )


Scenario = Callable[[Cli, Emulator], list[Invocation]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(function: Scenario) -> Scenario:
    SCENARIOS[function.__name__] = function
    return function


@scenario
def register(cli: Cli, _em: Emulator) -> list[Invocation]:
    args = ["--product-code", PRODUCT, "--public-key-version", "1", "--nonce", "cli-nonce"]
    return [cli("register-usage", *args)]


@scenario
def meter_twice(cli: Cli, _em: Emulator) -> list[Invocation]:
    return [cli.meter("users", 3), cli.meter("users", 3), cli.meter("users", 4)]


@scenario
def client_token(cli: Cli, _em: Emulator) -> list[Invocation]:
    return [
        cli.meter("gb", 5, "--client-token", "cli-token-1"),
        cli.meter("gb", 6, "--client-token", "cli-token-1"),
    ]


@scenario
def dry_run(cli: Cli, _em: Emulator) -> list[Invocation]:
    return [cli.meter("hosts", 1, "--dry-run"), cli.meter("nodes", 1, "--dry-run")]


@scenario
def out_of_bounds(cli: Cli, _em: Emulator) -> list[Invocation]:
    return [
        cli(
            "meter-usage",
            "--product-code",
            PRODUCT,
            "--timestamp",
            iso(NOW - 7 * 3600),
            "--usage-dimension",
            "hosts",
            "--usage-quantity",
            "1",
        )
    ]


@scenario
def too_long(cli: Cli, _em: Emulator) -> list[Invocation]:
    return [cli.meter("d" * 256, 1)]


@scenario
def allocations(cli: Cli, _em: Emulator) -> list[Invocation]:
    items = [
        {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "team", "Value": "a"}]},
        {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "team", "Value": "b"}]},
    ]
    return [cli.meter("cpus", 3, "--usage-allocations", json.dumps(items))]


@scenario
def batch(cli: Cli, _em: Emulator) -> list[Invocation]:
    def records(*accounts: str) -> str:
        return json.dumps(
            [
                {
                    "Timestamp": iso(NOW - 60),
                    "CustomerAWSAccountId": a,
                    "Dimension": "requests",
                    "Quantity": 7,
                }
                for a in accounts
            ]
        )

    args = ["--product-code", SAAS, "--usage-records"]
    first = cli("batch-meter-usage", *args, records(ALICE, CAROL, BOB))
    retry = cli("batch-meter-usage", *args, json.dumps(first.json["UnprocessedRecords"]))
    return [first, retry, cli("batch-meter-usage", *args, records(ALICE))]


@scenario
def resolve(cli: Cli, _em: Emulator) -> list[Invocation]:
    return [
        cli("resolve-customer", "--registration-token", "alice-token"),
        cli("resolve-customer", "--registration-token", "alice-token"),
        cli("resolve-customer", "--registration-token", "nobody's-token"),
    ]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    products = {
        PRODUCT: ProductBehavior(dimensions=("users", "gb", "hosts", "cpus")),
        SAAS: ProductBehavior(dimensions=("requests",), unprocessed=1),
    }
    with Emulator(products=products, key_factory=KEYS.factory) as em:
        alice = em.add_customer(SAAS, aws_account_id=ALICE)
        em.add_customer(SAAS, aws_account_id=BOB)
        em.add_customer(SAAS, aws_account_id=CAROL, subscribed=False)
        em.issue_registration_token(alice, token="alice-token")
        yield em


@pytest.fixture(scope="module")
def runs(emulator: Emulator) -> dict[str, list[Invocation]]:
    cli = Cli(emulator)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, cli, emulator) for name, run in SCENARIOS.items()}
        return {name: future.result() for name, future in futures.items()}


def test_register_usage_answers_a_token_our_verifier_accepts(
    runs: dict[str, list[Invocation]], emulator: Emulator
) -> None:
    (answer,) = runs["register"]
    assert answer.returncode == 0, answer.stderr
    verified = verify_signature(
        answer.json["Signature"],
        product_code=PRODUCT,
        public_key_version=1,
        nonce="cli-nonce",
        public_key=emulator.public_key(PRODUCT, 1),
    )
    assert verified.product_code == PRODUCT


def test_meter_usage_records_once_per_hour(
    runs: dict[str, list[Invocation]], emulator: Emulator
) -> None:
    first, repeat, other = runs["meter_twice"]
    assert first.returncode == 0, first.stderr
    assert repeat.json["MeteringRecordId"] == first.json["MeteringRecordId"]
    assert other.returncode == 255
    assert other.error_code() == "DuplicateRequestException"
    billed = emulator.records(dimension="users", billed=True)
    assert [r.record_id for r in billed] == [first.json["MeteringRecordId"]]


def test_meter_usage_client_token_conflict(runs: dict[str, list[Invocation]]) -> None:
    first, conflict = runs["client_token"]
    assert first.returncode == 0, first.stderr
    assert conflict.error_code() == "IdempotencyConflictException"


def test_meter_usage_dry_run(runs: dict[str, list[Invocation]], emulator: Emulator) -> None:
    allowed, bad_dimension = runs["dry_run"]
    assert allowed.error_code() == "DryRunOperation"
    assert bad_dimension.error_code() == "InvalidUsageDimensionException"
    assert emulator.records(dimension="hosts") == []


def test_meter_usage_timestamp_out_of_bounds(runs: dict[str, list[Invocation]]) -> None:
    assert runs["out_of_bounds"][0].error_code() == "TimestampOutOfBoundsException"


def test_meter_usage_model_validation(runs: dict[str, list[Invocation]]) -> None:
    (answer,) = runs["too_long"]
    assert answer.error_code() == "ValidationException"
    assert "Member must have length less than or equal to 255" in answer.stderr


def test_meter_usage_allocations_must_sum(runs: dict[str, list[Invocation]]) -> None:
    assert runs["allocations"][0].error_code() == "InvalidUsageAllocationsException"


def test_batch_meter_usage_statuses_unprocessed_and_idempotency(
    runs: dict[str, list[Invocation]], emulator: Emulator
) -> None:
    first, retry, again = runs["batch"]
    assert first.returncode == 0, first.stderr
    statuses = [
        (r["UsageRecord"]["CustomerAWSAccountId"], r["Status"]) for r in first.json["Results"]
    ]
    assert statuses == [(ALICE, "Success"), (CAROL, "CustomerNotSubscribed")]
    assert [r["CustomerAWSAccountId"] for r in first.json["UnprocessedRecords"]] == [BOB]
    assert [r["Status"] for r in retry.json["Results"]] == ["Success"]
    assert (
        again.json["Results"][0]["MeteringRecordId"]
        == (first.json["Results"][0]["MeteringRecordId"])
    )
    billed = emulator.records(product_code=SAAS, billed=True)
    assert sorted(r.customer or "" for r in billed) == [ALICE, BOB]


def test_resolve_customer_once_then_expired_and_unknown_tokens(
    runs: dict[str, list[Invocation]],
) -> None:
    first, again, unknown = runs["resolve"]
    assert first.returncode == 0, first.stderr
    assert (first.json["ProductCode"], first.json["CustomerAWSAccountId"]) == (SAAS, ALICE)
    assert again.error_code() == "ExpiredTokenException"
    assert unknown.error_code() == "InvalidTokenException"
