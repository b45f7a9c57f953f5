"""A workload that reports how it was started, from the kernel's own records.

Usage: workload.py REPORT_PATH [ARG...] - writes JSON to REPORT_PATH: pid, ppid, argv as execve
received it (/proc/self/cmdline) and the environment as execve received it (/proc/self/environ),
both unaffected by what CPython does at start-up. Exits with the status in WORKLOAD_EXIT (0).
"""

import json
import os
import sys
from pathlib import Path


def main() -> int:
    report = Path(sys.argv[1])
    cmdline = Path("/proc/self/cmdline").read_bytes().split(b"\0")[:-1]
    environ = [e for e in Path("/proc/self/environ").read_bytes().split(b"\0") if e]
    report.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "argv": [a.decode("utf-8", "surrogateescape") for a in cmdline],
                "environ": [e.decode("utf-8", "surrogateescape") for e in environ],
            }
        )
    )
    print("workload ran", flush=True)
    return int(os.environ.get("WORKLOAD_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
