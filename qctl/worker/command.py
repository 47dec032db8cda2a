"""How qctl starts `qctl work` in another process (listen, supervise, supervisor:config)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qctl.worker.options import WorkerOptions


def qctl_executable() -> list[str]:
    """The absolute command that runs this installation's qctl.

    The `qctl` script beside the running interpreter (a virtualenv's bin/) comes
    first, then `qctl` on PATH, then `python -m qctl` with this interpreter.
    """
    beside = Path(sys.executable).parent / "qctl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    on_path = shutil.which("qctl")
    if on_path:
        return [str(Path(on_path).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "qctl"]


def config_file_args(config_path: str | None, cwd: Path | None = None) -> list[str]:
    """`--config ABSOLUTE` when the config was named (option or $QCTL_CONFIG), so children read the same file."""
    named = config_path or os.environ.get("QCTL_CONFIG")
    if not named:
        return []
    path = Path(named)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return ["--config", str(path)]


def work_command(executable: list[str], config_args: list[str], connection: str | None,
                 options: WorkerOptions, verbose: bool = False) -> list[str]:
    """`qctl [--config F] work [CONNECTION] [options]`."""
    return [*executable, *config_args, "work", *([connection] if connection else []), *options.to_cli_args(),
            *(["-v"] if verbose else [])]


def terminate_with_parent() -> None:
    """In a child before exec (Linux): receive SIGTERM when the parent dies, so a killed parent orphans no worker."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
