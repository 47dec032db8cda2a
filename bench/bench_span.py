"""When the first and the last job of a benchmark ran, as seen from inside the worker process.

Benchmark jobs call `note_run()`. At exit the process appends one line
`first last count` (wall-clock seconds) to $QCTL_BENCH_SPAN_FILE, so a drain can be
timed from its first job to its last without interpreter start-up and shutdown.
Standard library only: both qctl's and the peers' environments import it.
"""

from __future__ import annotations

import atexit
import os
import time

SPAN_FILE = "QCTL_BENCH_SPAN_FILE"

_first = 0.0
_last = 0.0
_count = 0


def note_run() -> None:
    global _first, _last, _count
    now = time.time()
    if not _count:
        _first = now
    _last = now
    _count += 1


def _append_span(path: str) -> None:
    if _count:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{_first:.6f} {_last:.6f} {_count}\n")


if os.environ.get(SPAN_FILE):
    atexit.register(_append_span, os.environ[SPAN_FILE])


def read_span(path: str) -> tuple[float, int]:
    """(seconds from the first job to the last across every process, jobs run) from a span file."""
    if not os.path.exists(path):
        return 0.0, 0
    with open(path, encoding="utf-8") as lines:
        rows = [line.split() for line in lines if line.strip()]
    first = min(float(row[0]) for row in rows)
    last = max(float(row[1]) for row in rows)
    return last - first, sum(int(row[2]) for row in rows)
