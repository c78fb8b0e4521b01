"""Cost of the per-trial time-limit watchdog on the cheap path (trial finishes in time).

    python benchmarks/watchdog_overhead.py [--n 2000]

Times entering and leaving ``TrialWatchdog`` (a timer thread started and cancelled, plus
faulthandler's C timer armed and disarmed) against an empty block, and prints the median
overhead per trial in microseconds. A trial takes seconds, so this should stay far below 1 ms.
"""
from __future__ import annotations

import argparse
import statistics
import time

from automl.search.watchdog import TrialWatchdog


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    guarded, bare = [], []
    for _ in range(args.n):
        t = time.perf_counter()
        with TrialWatchdog(3600, lambda: None):
            pass
        guarded.append(time.perf_counter() - t)
        t = time.perf_counter()
        bare.append(time.perf_counter() - t)
    overhead_us = (statistics.median(guarded) - statistics.median(bare)) * 1e6
    print(f"watchdog overhead per trial: median {overhead_us:.0f} us "
          f"(p95 {sorted(guarded)[int(0.95 * args.n)] * 1e6:.0f} us) over {args.n} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
