"""`qctl supervise`: a private supervisord in the foreground running a pool of workers.

The config, log, pidfile and control socket live in a temporary directory that
is removed when supervisord stops. SIGTERM, SIGINT (Ctrl-C), SIGHUP and SIGQUIT
all become one SIGTERM for supervisord, which asks every worker to finish its
current job and waits up to stopwaitsecs before killing it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from qctl.supervisor.program import Program
from qctl.supervisor.render import render_private_supervisord
from qctl.worker.command import terminate_with_parent
from qctl.worker.signals import forwarded

STOP_SIGNALS: dict[int, int] = {signum: signal.SIGTERM for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)}


def supervisord_command() -> list[str]:
    """The supervisord of this installation's `supervisor` package."""
    beside = Path(sys.executable).parent / "supervisord"
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "supervisor.supervisord"]


@dataclass(frozen=True)
class Pool:
    """A running private supervisord."""

    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def config_file(self) -> Path:
        return self.directory / "supervisord.conf"


@contextmanager
def private_directory() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="qctl-supervise-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def supervise(program: Program, on_start: Callable[[Pool], None], on_stop: Callable[[int], None]) -> int:
    """Run the pool until supervisord exits; returns its exit status (0 after a graceful stop)."""
    with private_directory() as directory:
        (directory / "supervisord.conf").write_text(render_private_supervisord(directory, program), encoding="utf-8")
        process = subprocess.Popen(
            [*supervisord_command(), "--nodaemon", "--configuration", str(directory / "supervisord.conf")],
            stdout=subprocess.PIPE,
            start_new_session=True,  # signals reach it only through us: one TERM, never a Ctrl-C storm
            preexec_fn=terminate_with_parent,
        )
        relay = threading.Thread(target=relay_lines, args=(process.stdout, sys.stdout.buffer), daemon=True)
        relay.start()
        with forwarded(lambda: process, STOP_SIGNALS, on_stop=on_stop):
            on_start(Pool(process, directory))
            status = process.wait()
        relay.join(timeout=5)
        return status


def relay_lines(source: IO[bytes] | None, target: IO[bytes]) -> None:
    """Copy the pool's output (supervisord's log and every worker's) to our stdout, one writer, line by line.

    Through a pipe rather than /dev/stdout directly: several processes writing one
    non-appending file would overwrite each other's lines.
    """
    if source is None:
        return
    for line in source:
        target.write(line)
        target.flush()
