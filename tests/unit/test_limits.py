"""One set of bounds for every number a user gives qctl (qctl.limits)."""

from __future__ import annotations

import pytest

from qctl import limits
from qctl.bus import payloads
from qctl.payload import envelope


def test_a_payload_is_checked_against_the_shared_bounds() -> None:
    import json

    from qctl.errors import PayloadError

    body = {"uuid": "00000000-0000-4000-8000-000000000001", "job": envelope.HANDLER_JOB, "maxTries": 1,
            "data": {"commandName": "app.jobs:Ship", "command": {}}}
    assert envelope.parse(json.dumps({**body, "timeout": limits.MAX_SECONDS}).encode(), None).timeout == limits.MAX_SECONDS
    with pytest.raises(PayloadError, match="timeout"):
        envelope.parse(json.dumps({**body, "timeout": limits.MAX_SECONDS + 1}).encode(), None)
    with pytest.raises(PayloadError, match="maxTries"):
        envelope.parse(json.dumps({**body, "maxTries": limits.MAX_COUNT + 1}).encode(), None)
    assert limits.MAX_COUNT == payloads.MAX_COUNT
    assert limits.MAX_HOURS * 3600 <= limits.MAX_SECONDS


@pytest.mark.parametrize("value", [0, 1, 2.5, limits.MAX_SECONDS])
def test_a_finite_number_within_the_bounds_passes(value: float) -> None:
    assert limits.out_of_bounds(value, 0, limits.MAX_SECONDS, "seconds") is None


@pytest.mark.parametrize(
    "value, shown",
    [
        (float("inf"), "inf"), (float("-inf"), "-inf"), (float("nan"), "nan"), (-1, "-1"),
        (limits.MAX_SECONDS + 1, str(limits.MAX_SECONDS + 1)), (True, "True"), ("5", "'5'"),
        (10**400, "1" + "0" * 36 + "..."),
    ],
)
def test_anything_else_says_what_was_expected(value: object, shown: str) -> None:
    assert limits.out_of_bounds(value, 0, 10, "seconds") == f"expected 0 to 10 seconds, got {shown}"


def test_an_integer_too_long_to_print_is_still_one_short_line() -> None:
    import sys

    if not hasattr(sys, "get_int_max_str_digits"):
        pytest.skip("no integer string limit on this Python")
    message = limits.out_of_bounds(10**5000, 0, 10, "")
    assert message == "expected 0 to 10, got a number too long to show"
