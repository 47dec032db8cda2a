"""The Redis driver's bulk push, chunk by chunk: one MULTI/EXEC of plain RPUSHes (delayed jobs,
timed on the server's clock, through `lua/bulk.lua` in the same transaction), or on a cluster one
`bulk.lua` call per slot. Plain commands rather than one script per chunk: Redis spends about half
a µs per argument just handing a script its ARGV (525 µs against 47 µs for 500 jobs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from qctl.drivers.chunks import Item, chunked
from qctl.drivers.redis_client import Call
from qctl.drivers.redis_keys import QueueKeys, new_token
from qctl.drivers.scripts import script

BULK_CHUNK = 500
BULK_CHUNK_CHARACTERS = 16 * 1024 * 1024
"""A chunk also ends once its payloads reach this size: one call's arguments sit whole in the
server's query buffer (`client-query-buffer-limit`, 1 GB by default)."""

ByQueue = dict[str, list[str]]
KeysOf = Callable[[str], QueueKeys]


def bulk_chunks(items: Sequence[Item]) -> Iterator[Sequence[Item]]:
    return chunked(items, BULK_CHUNK, BULK_CHUNK_CHARACTERS)


def by_queue(chunk: Sequence[Item]) -> tuple[ByQueue, ByQueue]:
    """(queue → its ready payloads, queue → delay and tokened member of each delayed job), in order."""
    ready: ByQueue = {}
    delayed: ByQueue = {}
    for payload, queue, delay in chunk:
        if delay > 0:
            delayed.setdefault(queue, []).extend((repr(float(delay)), f"{new_token()}:{payload}"))
        else:
            found = ready.get(queue)
            if found is None:
                ready[queue] = [payload]
            else:
                found.append(payload)
    return ready, delayed


def bulk_commands(ready: ByQueue, delayed: ByQueue, keys_of: KeysOf) -> list[tuple[Any, ...]]:
    """For MULTI/EXEC: a queue's ready payloads in one RPUSH and as many wake-up tokens in another;
    the delayed jobs of every queue in one `bulk` script call."""
    commands: list[tuple[Any, ...]] = []
    for queue, payloads in ready.items():
        target = keys_of(queue)
        commands += (("RPUSH", target.ready, *payloads), ("RPUSH", target.notify, *(("1",) * len(payloads))))
    if delayed:
        (bulk, keys, args), = bulk_calls({}, delayed, keys_of, cluster=False)
        commands.append(("EVALSHA", bulk.sha, len(keys), *keys, *args))
    return commands


def bulk_calls(ready: ByQueue, delayed: ByQueue, keys_of: KeysOf, cluster: bool) -> list[Call]:
    """The `bulk` script's keys (three per queue) and arguments (per queue: its ready payloads, then
    its delayed jobs), one call per cluster slot of the queues (one in all when not on a cluster)."""
    by_slot: dict[int, tuple[list[str], list[str]]] = {}
    for queue in {**ready, **delayed}:
        keys = keys_of(queue)
        slot_keys, args = by_slot.setdefault(keys.slot if cluster else 0, ([], []))
        slot_keys += (keys.ready, keys.delayed, keys.notify)
        now, later = ready.get(queue, ()), delayed.get(queue, ())
        args += (str(len(now)), str(len(later) // 2), *now, *later)
    bulk = script("bulk")
    return [(bulk, keys, args) for keys, args in by_slot.values()]
