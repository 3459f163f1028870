"""Run every benchmark of bench/ with its defaults, one after the other (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "http_transports.py",
    "matching_cost.py",
    "broker_cold_start.py",
    "pipeline_throughput.py",
]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        done = subprocess.run([sys.executable, str(here / name)], check=False)  # noqa: S603
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
