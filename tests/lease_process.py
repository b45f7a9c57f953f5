"""A program holding a floating seat with `entrypoint.LicenseLease`, as a seller's software would.

Usage: lease_process.py KEYS_DIR ENDPOINT_URL [exit] - opens the lease against the License Manager
at ENDPOINT_URL (the program's own choice, as in-process code may make it), prints ``held``, then
serves until SIGTERM (or exits at once with ``exit``). SIGTERM is turned into ``SystemExit(143)``,
the application's job (the lease installs no signal handlers), so the ``with`` block checks the
seat in on the way out.
"""

import signal
import sys
import time
from types import FrameType

from entrypoint import EntrypointError, LicenseLease
from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY
from entrypoint.license.client import BotocoreLicenseClient
from entrypoint.metering import StaticCredentials


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    client = BotocoreLicenseClient(
        region="us-east-1",
        endpoint_url=sys.argv[2],
        credentials=StaticCredentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY),
    )
    try:
        with LicenseLease(keys_dir=sys.argv[1], client=client, recheck_interval=0.2) as lease:
            print("held" if lease.state.holding else "not held", flush=True)
            while sys.argv[3:] != ["exit"]:
                time.sleep(0.05)
    except EntrypointError as error:
        print(error.diagnosis(), file=sys.stderr)
        return int(error.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
