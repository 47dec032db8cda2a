"""The Redis failed-job store (`[failed] driver = "redis"`), as Horizon keeps failed jobs in Redis.

Keys, under the `[failed] table` as namespace (by default the Redis connection's prefix +
`failed_jobs`), all with one hash tag so every script runs in one Redis Cluster slot — the
namespace's own `{tag}` when it has one, else `{failed}`:
- `<base>:job:<uuid>`  hash: id, connection, queue, payload (the bytes unchanged), exception, failed_at
- `<base>:ids`         sorted set: uuid scored by row id (newest first, `--range`)
- `<base>:times`       sorted set: uuid scored by failed_at, unix seconds from the server's clock (prune)
- `<base>:seq`         the last row id handed out
Writes are Lua scripts (qctl/failed/lua/): a record and its two index entries appear and go together.
The client is the driver's (`RedisClient`): a cluster client on a Redis Cluster, no hidden retries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import exceptions as rx

from qctl.drivers.redis_client import RedisClient, reason_of, refusal, server_of
from qctl.drivers.scripts import RegisteredScripts
from qctl.errors import DriverError, StoreRefusedError, StoreUnavailableError
from qctl.failed.base import FailedCounts, FailedJob, clean_text

PAGE = 500
"""Records read or deleted per round trip."""
_HASH_TAG = re.compile(r"\{[^{}]+\}")


def key_base(namespace: str) -> str:
    """`<namespace>:{failed}`, or the namespace itself when it already holds a hash tag."""
    return namespace if _HASH_TAG.search(namespace) else f"{namespace}:{{failed}}"


class RedisFailedJobStore:
    def __init__(self, url: str, namespace: str = "failed_jobs", where: str = "") -> None:
        self.url = url
        self.where = where  # the config key of the URL, for a refusal that retrying cannot heal
        base = key_base(namespace)
        self.ids, self.times, self.seq = f"{base}:ids", f"{base}:times", f"{base}:seq"
        self._record_prefix = f"{base}:job:"
        self._connection = RedisClient(url, None, where=where)
        self._client: Any = None
        self._script = RegisteredScripts("qctl.failed", self._redis)

    def log(self, connection: str, queue: str, payload: bytes, exception: str, uuid: str) -> str:
        keys = [self._record(uuid), self.ids, self.times, self.seq]
        with self._errors("record a failed job"):
            self._script("log")(keys=keys, args=[uuid, connection, queue, bytes(payload), clean_text(exception)])
        return uuid

    def all(self) -> list[FailedJob]:
        with self._errors("read failed jobs"):
            return self._fetch(self._redis().zrevrange(self.ids, 0, -1))

    def find(self, uuid: str) -> FailedJob | None:
        with self._errors("read failed jobs"):
            found = self._fetch([uuid.encode("utf-8")])
        return found[0] if found else None

    def find_by_row_ids(self, low: int, high: int) -> list[FailedJob]:
        with self._errors("read failed jobs"):
            return self._fetch(self._redis().zrangebyscore(self.ids, low, high))

    def forget(self, uuid: str) -> bool:
        with self._errors("forget a failed job"):
            return self._remove([uuid.encode("utf-8")], cutoff="", marker=b"")[0] > 0

    def flush(self, hours: float | None = None) -> int:
        return self.flush_returning(hours, b"")[0]

    def flush_returning(self, hours: float | None, marker: bytes) -> tuple[int, list[bytes]]:
        with self._errors("flush failed jobs"):
            if hours is None:
                return self._remove_before("", marker)
            seconds, micros = self._redis().time()  # failed_at comes from the server's clock too
            return self._remove_before(repr(seconds + micros / 1e6 - hours * 3600), marker)

    def prune(self, before: dt.datetime) -> int:
        aware = before if before.tzinfo is not None else before.replace(tzinfo=dt.UTC)  # naive is UTC, as stored
        with self._errors("prune failed jobs"):
            return self._remove_before(repr(aware.timestamp()), b"")[0]

    def count(self) -> int:
        with self._errors("count failed jobs"):
            return int(self._redis().zcard(self.ids))

    def count_by_queue(self) -> dict[tuple[str, str], FailedCounts]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        counts: dict[tuple[str, str], FailedCounts] = {}
        for record in self.all():
            seen = counts.get((record.connection, record.queue), FailedCounts())
            age = (now - record.failed_at).total_seconds()
            counts[(record.connection, record.queue)] = FailedCounts(
                seen.total + 1, seen.last_hour + (age <= 3600), seen.last_minute + (age <= 60))
        return counts

    def close(self) -> None:
        self._connection.close()
        self._client = None

    def _remove_before(self, cutoff: str, marker: bytes) -> tuple[int, list[bytes]]:
        """Delete, a page at a time, every record that failed before `cutoff` ('' = all)."""
        total, held = 0, list[bytes]()
        upper = "+inf" if cutoff == "" else f"({cutoff}"
        while True:
            page = self._redis().zrangebyscore(self.times, "-inf", upper, start=0, num=PAGE)
            if not page:
                return total, held
            deleted, found = self._remove(page, cutoff, marker)
            if not deleted:  # nothing below the cutoff after all (a clock edge): never loop on it
                return total, held
            total += deleted
            held += found

    def _remove(self, uuids: Sequence[bytes], cutoff: str, marker: bytes) -> tuple[int, list[bytes]]:
        keys = [self.ids, self.times, *(self._record(u.decode("utf-8")) for u in uuids)]
        reply = self._script("remove")(keys=keys, args=[cutoff, marker, *uuids])
        return int(reply[0]), [bytes(payload) for payload in reply[1:]]

    def _fetch(self, uuids: Sequence[bytes]) -> list[FailedJob]:
        """The records of `uuids`, in that order (one that is gone meanwhile is left out)."""
        found: list[FailedJob] = []
        for start in range(0, len(uuids), PAGE):
            page = uuids[start:start + PAGE]
            pipe = self._redis().pipeline(transaction=False)
            for uuid in page:
                pipe.hgetall(self._record(uuid.decode("utf-8")))
            found += [self._parse(uuid, fields) for uuid, fields in zip(page, pipe.execute(), strict=True) if fields]
        return found

    @staticmethod
    def _parse(uuid: bytes, fields: dict[bytes, bytes]) -> FailedJob:
        failed_at = dt.datetime.fromtimestamp(float(fields[b"failed_at"]), dt.UTC).replace(tzinfo=None)
        return FailedJob(
            id=int(fields[b"id"]),
            uuid=uuid.decode("utf-8"),
            connection=fields[b"connection"].decode("utf-8"),
            queue=fields[b"queue"].decode("utf-8"),
            payload=fields[b"payload"],
            exception=fields[b"exception"].decode("utf-8", "backslashreplace"),
            failed_at=failed_at,
        )

    def _record(self, uuid: str) -> str:
        return self._record_prefix + uuid

    def _redis(self) -> Any:
        """The client, made on first use: a cluster client when the server is a Redis Cluster node."""
        if self._client is None:
            self._client = self._connection.client()
        return self._client

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except rx.RedisError as exc:
            refused = refusal(exc, self.where, server_of(self.url))
            if refused is not None:
                raise refused from exc
            raise self._unavailable(action, exc) from exc
        except StoreRefusedError:
            raise
        except DriverError as exc:  # connecting (and asking whether it is a cluster) failed
            raise self._unavailable(action, exc.__cause__ or exc) from exc

    def _unavailable(self, action: str, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"failed-job store at Redis {server_of(self.url)}: cannot {action}: {reason_of(exc)}")
