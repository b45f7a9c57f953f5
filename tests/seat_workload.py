"""A workload that reports what the License Manager emulator held when it started.

Usage: seat_workload.py REPORT_PATH STATE_URL - reads the emulator's ``GET /_emulator/state`` at
the moment the workload runs (after the bootstrap's exec) and writes its PID and the number of
checkouts still holding entitlements to REPORT_PATH, as JSON.
"""

import json
import os
import sys
import urllib.request
from pathlib import Path


def main() -> int:
    with urllib.request.urlopen(sys.argv[2], timeout=10) as response:  # noqa: S310 - loopback test URL
        state = json.loads(response.read())["license_manager"]
    Path(sys.argv[1]).write_text(
        json.dumps({"pid": os.getpid(), "held_checkouts": state["held_checkouts"]})
    )
    print("workload ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
