"""Which queue names a connection can hold: checked at dispatch and when a worker starts.

Every driver refuses names a worker could never be pointed at (`--queue a,b` splits on commas and
strips spaces) and names with control characters. Redis keeps a queue's delayed, reserved, wake-up
and attempts sets under `<queue>:<suffix>`, so on Redis a queue whose name ends in one of those
suffixes would share a key with another queue's (`q:notify` is the wake-up list of `q`: an idle worker
of `q` would delete its jobs); such names are refused rather than escaped, which keeps the key scheme
Laravel's.
"""

from __future__ import annotations

from qctl.errors import UsageError

REDIS_SUFFIXES = ("delayed", "reserved", "notify", "attempts")
"""The key suffixes of a Redis queue (`queues:<name>:<suffix>`); see `redis_keys.queue_keys`."""

MAX_QUEUE_NAME = 255


def check_queue_name(name: object, driver: str, where: str = "queue") -> str:
    """`name` if a `driver` connection can hold it, else UsageError saying why in one line."""
    problem = queue_name_problem(name, driver)
    if problem is not None:
        raise UsageError(f"{where} {name!r}: {problem}")
    assert isinstance(name, str)
    return name


def queue_name_problem(name: object, driver: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "a queue name is a non-empty string"
    if len(name) > MAX_QUEUE_NAME:
        return f"a queue name has at most {MAX_QUEUE_NAME} characters"
    if name != name.strip() or "," in name:
        return "a queue name cannot contain commas or start or end with spaces (`--queue a,b` names two queues)"
    if not name.isprintable():
        return "a queue name cannot contain control characters"
    if driver == "redis" and name.rpartition(":")[2] in REDIS_SUFFIXES and ":" in name:
        return (
            f"on Redis a queue name cannot end in :{name.rpartition(':')[2]} — that is the key of queue "
            f"{name.rpartition(':')[0]!r}'s {name.rpartition(':')[2]} set; choose another name"
        )
    return None
