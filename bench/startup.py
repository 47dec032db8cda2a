"""Start-up time of `qctl --version` (and, for scale, of a bare interpreter), median of many runs.

Runs the installed console script beside this interpreter, so what is timed is what a
user types. With `hyperfine` on PATH it also runs hyperfine (no shell, warm-up runs)
and prints its summary.

    python bench/startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def console_script() -> str:
    beside = Path(sys.executable).with_name("qctl")
    return str(beside) if beside.exists() else (shutil.which("qctl") or "qctl")


def timed_runs(command: list[str], runs: int) -> list[float]:
    for _ in range(3):  # warm the page cache and .pyc files
        subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    commands = {
        "qctl --version": [console_script(), "--version"],
        "python -m qctl --version": [sys.executable, "-m", "qctl", "--version"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
    }
    # Interleaved, so a burst of load from elsewhere hits every command alike.
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(1, args.runs // 10)):
        for name, command in commands.items():
            samples[name] += timed_runs(command, 10)
    for name, times in samples.items():
        print(f"{name:26} median {statistics.median(times) * 1000:6.1f} ms  "
              f"min {min(times) * 1000:6.1f} ms  ({len(times)} runs)")
    if shutil.which("hyperfine"):
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "5", "--runs", str(args.runs), f"{console_script()} --version"],
            check=False,
        )


if __name__ == "__main__":
    main()
