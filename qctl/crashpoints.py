"""Test-only crash points: `QCTL_CRASHPOINT=<name>[:<nth>]` ends the process at the nth pass of a point.

Inert unless the variable is set: each point is then a string comparison. The
chaos suite uses them to stop a worker at the exact instant between two steps
(status 137, as after SIGKILL) and prove the job still ends in one terminal state.
"""

from __future__ import annotations

import os

EXIT_CRASHED = 137

_name, _, _nth = os.environ.get("QCTL_CRASHPOINT", "").partition(":")
_target = int(_nth) if _nth.isdigit() else 1
_passes = 0


def crash_point(name: str) -> None:
    global _passes
    if not _name or name != _name:
        return
    _passes += 1
    if _passes == _target:
        os._exit(EXIT_CRASHED)
