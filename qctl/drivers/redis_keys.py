"""Key names of the Redis driver, and which of them share a Redis Cluster slot.

Every key of a queue is `<prefix>queues:<queue>[:suffix]`. A queue named with a hash
tag (`{default}`) puts all of its keys in one cluster slot, which is what lets each
script touch all of a queue's keys at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from redis.crc import key_slot


@dataclass(frozen=True)
class QueueKeys:
    queue: str
    ready: str
    delayed: str
    reserved: str
    notify: str
    attempts: str

    def all(self) -> tuple[str, str, str, str, str]:
        """In the order the reserve and clear scripts expect them."""
        return (self.ready, self.delayed, self.reserved, self.notify, self.attempts)

    @property
    def slot(self) -> int:
        return slot_of(self.ready)


def queue_keys(prefix: str, queue: str) -> QueueKeys:
    base = f"{prefix}queues:{queue}"
    return QueueKeys(
        queue=queue,
        ready=base,
        delayed=f"{base}:delayed",
        reserved=f"{base}:reserved",
        notify=f"{base}:notify",
        attempts=f"{base}:attempts",
    )


def new_token() -> str:
    """16 hex characters naming a reservation or a delayed entry: sorted-set members are `<token>:<payload>`."""
    return os.urandom(8).hex()


def slot_of(key: str) -> int:
    """The cluster slot of a key (CRC16 of its hash tag, or of the whole key), as CLUSTER KEYSLOT computes."""
    return int(key_slot(key.encode("utf-8")))


def group_by_slot(queues: Sequence[QueueKeys]) -> list[list[QueueKeys]]:
    """Consecutive queues that share a slot, in priority order: one script call per group on a cluster."""
    groups: list[list[QueueKeys]] = []
    for keys in queues:
        if groups and groups[-1][0].slot == keys.slot:
            groups[-1].append(keys)
        else:
            groups.append([keys])
    return groups
