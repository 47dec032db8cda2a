"""What an idle `qctl top` costs: its CPU time while it redraws every second and nobody presses a key.

`qctl top` runs in a pseudo-terminal of 80×24 (its output read and thrown away, as a terminal
would draw it) against queues that are empty, no worker running, on each target (a temp SQLite
file, PostgreSQL, Redis), whose cache holds a day of metrics rows of `--history-workers` workers
(1,440 minute rows and 168 hour rows each, as a busy day leaves them); after a warm-up its
process's CPU time (user + system) is sampled over `--seconds`, as a share of one core (target:
under 5%). Targets run one after the other, `--rounds`
times interleaved; medians over rounds. Tables and keys get random names and are dropped afterwards.

    python bench/top_idle.py [--seconds 20] [--rounds 3] [--history-workers 4] [--only sqlite,postgresql,redis]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import psutil
from metrics_overhead import (  # bench/ is on sys.path: the same targets and clean-up
    POSTGRES_URL,
    REDIS_URL,
    drop,
)

from qctl import config as config_module
from qctl.cache import keys
from qctl.runtime import Runtime
from qctl.worker.metrics import Totals, encode_row

WARM_UP_SECONDS = 3.0


def write_config(directory: Path, kind: str, token: str) -> None:
    sqlite = f"sqlite:///{directory}/bench.sqlite"
    if kind == "redis":
        connection = f'driver = "redis"\nurl = "{REDIS_URL}"\nprefix = "qctl-bench-{token}:"'
        stores = f'[cache]\ndriver = "redis"\nurl = "{REDIS_URL}"\ntable = "qctl-bench-{token}:cache"\n'
    else:
        url = POSTGRES_URL if kind == "postgresql" else sqlite
        connection = f'driver = "database"\nurl = "{url}"\ntable = "jobs_{token}"'
        stores = f'[cache]\nurl = "{url}"\ntable = "cache_{token}"\n'
    (directory / "qctl.toml").write_text(
        f'default = "main"\n\n[connections.main]\n{connection}\n\n{stores}'
        f'[failed]\nurl = "{sqlite}"\n[batching]\nurl = "{sqlite}"\n', encoding="utf-8")
    subprocess.run([sys.executable, "-m", "qctl", "migrate"], cwd=directory, check=True, capture_output=True)


def write_history(directory: Path, workers: int) -> None:
    """A day of minute rows and a week of hour rows per worker, two series each, as workers write them."""
    totals = Totals(processed=50, failed=1)
    for _ in range(51):
        totals.runtime.add(12.0)
        totals.wait.add(30.0)
    row = encode_row({("main", "default", "app.jobs.Ship"): totals, ("main", "mail", "app.jobs.Mail"): totals})
    runtime = Runtime(config_module.load(directory / "qctl.toml"))
    minute = int(time.time() // 60)
    try:
        for worker in range(workers):
            name = f"bench-host:{worker}:1"
            for back in range(1440):
                runtime.cache.put(keys.metrics_bucket(keys.METRICS_MINUTE_PREFIX, minute - back, name), row, 86400)
            for back in range(168):
                runtime.cache.put(keys.metrics_bucket(keys.METRICS_HOUR_PREFIX, minute // 60 - back, name), row, 7 * 86400)
    finally:
        runtime.close()


def idle_share(directory: Path, seconds: float) -> float:
    """CPU seconds per second of wall time of `qctl top` in an 80×24 pseudo-terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    process = subprocess.Popen([sys.executable, "-m", "qctl", "top"], cwd=directory, env=env, stdin=follower,
                               stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    reader = threading.Thread(target=_drain, args=(leader,), daemon=True)
    reader.start()
    try:
        time.sleep(WARM_UP_SECONDS)  # start-up (imports, the first frame) is not idle time
        measured = psutil.Process(process.pid)
        before, start = measured.cpu_times(), time.monotonic()
        time.sleep(seconds)
        after, wall = measured.cpu_times(), time.monotonic() - start
        assert process.poll() is None, "qctl top exited early"
        return ((after.user - before.user) + (after.system - before.system)) / wall
    finally:
        os.write(leader, b"q")
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        os.close(leader)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:  # the terminal closed
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history-workers", type=int, default=4)
    parser.add_argument("--only", default="sqlite,postgresql,redis")
    args = parser.parse_args()
    kinds, token = args.only.split(","), secrets.token_hex(4)
    shares: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in kinds:
                (Path(tmp) / kind).mkdir()
                write_config(Path(tmp) / kind, kind, token)
                write_history(Path(tmp) / kind, args.history_workers)
            for round_number in range(args.rounds):
                for kind in kinds:
                    share = idle_share(Path(tmp) / kind, args.seconds)
                    shares[kind].append(share)
                    print(f"  round {round_number + 1} {kind}: {share * 100:.2f}% of a core", file=sys.stderr, flush=True)
    finally:
        for kind in kinds:
            drop(kind, token)
    print(f"{'target':<12} {'idle CPU, % of a core (median)':>32}  (metrics rows of {args.history_workers} workers' day)")
    for kind in kinds:
        print(f"{kind:<12} {statistics.median(shares[kind]) * 100:>32.2f}")


if __name__ == "__main__":
    main()
