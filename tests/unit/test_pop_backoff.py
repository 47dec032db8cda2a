"""Reconnect backoff: exponential and capped, with jitter so a pool does not reconnect in lockstep."""

from __future__ import annotations

import random

from qctl.worker.worker import PopBackoff


def delays(backoff: PopBackoff, count: int) -> list[float]:
    found = []
    for _ in range(count):
        backoff.failures += 1
        found.append(backoff.next_delay())
    return found


def test_each_delay_falls_in_the_upper_half_of_its_exponential_step_up_to_the_cap() -> None:
    assert delays(PopBackoff(jitter=lambda: 0.0), 7) == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert delays(PopBackoff(jitter=lambda: 0.999999), 7) == [
        step * (0.5 + 0.5 * 0.999999) for step in (1, 2, 4, 8, 16, 30, 30)
    ]


def test_workers_that_lost_the_store_together_spread_their_reconnects() -> None:
    pool = [PopBackoff(jitter=random.Random(seed).random) for seed in range(20)]
    for attempt in range(1, 8):
        step = min(30.0, 2.0 ** (attempt - 1))
        round_ = [delays(backoff, 1)[0] for backoff in pool]
        assert all(step / 2 <= delay < step for delay in round_)
        assert len({round(delay, 6) for delay in round_}) == len(pool)  # nobody in lockstep
    assert max(delays(PopBackoff(), 20)) < 30.0
