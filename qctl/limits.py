"""The bounds every number qctl takes from a user must fit: one place, shared by config, CLI and env.

A value past them (a NaN, an infinity, 1e309, a 20-digit integer) would overflow an OS timer, a
`timedelta` or a BIGINT column far from where it was typed, so it is refused where it enters.
"""

from __future__ import annotations

MAX_SECONDS = 10 * 365 * 24 * 3600
"""Ten years: the longest timeout, sleep, backoff or age anywhere, payload fields included."""
MAX_HOURS = MAX_SECONDS // 3600
MAX_COUNT = 2**31 - 1
"""The most tries, jobs, processes or megabytes (what every store's integer columns hold)."""
MAX_ROW_ID = 2**63 - 1
"""A row id (a BIGINT on every database)."""


def out_of_bounds(value: object, low: float, high: float, unit: str) -> str | None:
    """None when `value` is a finite number from `low` to `high`, else what was expected, for a message."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and low <= value <= high:  # type: ignore[operator]  # NaN fails both comparisons, inf the second
        return None
    return f"expected {_plain(low)} to {_plain(high)}{' ' + unit if unit else ''}, got {_shown(value)}"


def _plain(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer too long for str()
        return "a number too long to show"
    return text if len(text) <= 40 else text[:37] + "..."
