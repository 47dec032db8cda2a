from __future__ import annotations

from benchjobs import COUNTER, client


def incr() -> None:
    client().incr(COUNTER)
