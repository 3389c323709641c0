"""How long `vacelab demo --out DIR` (no model) takes, as a user runs it: a fresh `python -m vacelab demo`
process each time (imports and the sample's decoding included). Target: under 30 s on a 2-core CPU machine.

Prints each run's wall-clock and CPU seconds (user + system of the child process: on a busy machine the
wall clock grows with the other work, the CPU time does not; on an idle machine the two are close), the
medians, the load average before the runs, and the report's size.
Usage: ``python benchmarks/bench_demo.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", help="job size (default: the demo's)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    seconds, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"demo{i}"
            command = [sys.executable, "-m", "vacelab", "demo", "--out", str(out)]
            command += ["--size", args.size] if args.size else []
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            report = out / "report.html"
            print(
                f"run {i + 1}: {seconds[-1]:.1f} s wall, {cpu[-1]:.1f} s CPU, "
                f"report {report.stat().st_size / 1e6:.2f} MB"
            )
    print(
        f"median {statistics.median(seconds):.1f} s wall, {statistics.median(cpu):.1f} s CPU over "
        f"{len(seconds)} runs (target < 30 s); load average after: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
