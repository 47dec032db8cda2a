"""Splitting a bulk push into chunks a store takes in one statement or call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

Item = tuple[str, str, float]
"""(payload, queue, delay seconds), as drivers take jobs."""


def chunked(items: Sequence[Item], most: int, characters: int) -> Iterator[Sequence[Item]]:
    """Consecutive runs of at most `most` jobs and about `characters` of payload (a bigger payload goes alone)."""
    start, size = 0, 0
    for end, (payload, _, _) in enumerate(items):
        size += len(payload)
        if end - start == most or (size > characters and end > start):
            yield items[start:end]
            start, size = end, len(payload)
    if start < len(items):
        yield items[start:]
