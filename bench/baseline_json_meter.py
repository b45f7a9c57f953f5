"""The baseline of bench/meter_store.py: the durable add of the JSON state file that the usage
store replaced (entrypoint/meter/store.py and meter.py at commit 765cd51), reproduced.

That add validated the quantity, added it to the in-memory book under a lock, then saved the
whole book before returning: ``json.dumps`` (indent 1, sorted keys), a temporary file beside the
state file, ``fsync``, ``rename`` over it, ``fsync`` of the directory, one save at a time. The
book here holds what a running meter holds: 2 dimensions over 8 hours.

    python -m bench.baseline_json_meter DIRECTORY THREADS COUNT   # prints latencies as JSON
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from entrypoint.meter.hours import client_token, format_quantity, parse_quantity


class JsonMeter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.book: dict[tuple[str, int], Decimal] = {
            (dimension, hour * 3600): Decimal(0)
            for dimension in ("gb", "users")
            for hour in range(8)
        }
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()

    def add(self, dimension: str, quantity: object) -> None:
        amount = parse_quantity(quantity)
        with self._lock:
            key = (dimension, 7 * 3600)
            self.book[key] = self.book.get(key, Decimal(0)) + amount
        self._save()

    def _save(self) -> None:
        with self._save_lock:
            with self._lock:
                buckets = [
                    {
                        "dimension": dimension,
                        "hour": hour,
                        "quantity": format_quantity(quantity),
                        "token": client_token("instance", "prod-bench", dimension, hour),
                        "state": "open",
                        "record_id": None,
                    }
                    for (dimension, hour), quantity in sorted(self.book.items())
                ]
            document = {
                "format": "marketplace-entrypoint-meter",
                "version": 1,
                "product_code": "prod-bench",
                "instance_id": "instance",
                "buckets": buckets,
            }
            payload = json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"
            temporary = self.path.with_name(f".{self.path.name}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            temporary.replace(self.path)
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


def main() -> None:
    directory, threads, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    meter = JsonMeter(directory / "meter.json")
    for _ in range(20):
        meter.add("users", 1)
    latencies: list[float] = []
    collected = threading.Lock()

    def run() -> None:
        mine = []
        for _ in range(count):
            began = time.perf_counter()
            meter.add("users", 1)
            mine.append(time.perf_counter() - began)
        with collected:
            latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"seconds": time.perf_counter() - began, "latencies": latencies}))


if __name__ == "__main__":
    main()
