"""The Redis connection of one qctl connection: lazy clients, cluster detection, scripts by SHA,
and every redis-py error turned into one clear `DriverError` line naming the server.

Nothing connects until the first command. redis-py's own retries are off: a reserve or push
must not run twice behind the caller's back; the worker's backoff does the retrying.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

try:
    from hiredis import pack_command
except ImportError:  # redis-py without its hiredis extra
    pack_command = None  # type: ignore[assignment]

from qctl.drivers.scripts import Script
from qctl.errors import DriverError

Call = tuple[Script, Sequence[str], Sequence[str | bytes]]
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
BLOCKING_MARGIN = 10.0


def server_of(url: str) -> str:
    """`host:port` (or the socket path) for messages; never the password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


def reason_of(exc: BaseException) -> str:
    """The OS's word for a failed socket (`Connection refused`), else redis-py's message, trimmed."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Error \d+ (connecting to|while writing to socket\.?)\s*\S*\s*", "", text)
    return text.rstrip(".") or type(exc).__name__


def command(conn: Any, *args: Any) -> Any:
    """One command on one connection; redis-py disconnects it on any error, so the next send reconnects.

    Packed by hiredis directly: redis-py's packer first copies and type-checks every argument.
    """
    if pack_command is None:
        conn.send_command(*args)
    else:
        conn.send_packed_command((pack_command(args),), check_health=False)
    return conn.read_response()


def is_stale(conn: Any) -> bool:
    """An idle connection with something to read was closed by the server (a restart) or left dirty."""
    try:
        return bool(conn.can_read())
    except (rx.ConnectionError, OSError):  # hiredis reports the server's close as an error
        return True


class RedisClient:
    def __init__(self, url: str, block_for: float | None) -> None:
        self.url = url
        self.server = server_of(url)
        self.block_for = block_for
        self.cluster = False
        self._client: Any = None
        self._blocking: Any = None
        self._local = threading.local()
        self._pid = os.getpid()
        self._owned: weakref.WeakSet[Any] = weakref.WeakSet()  # a thread's connection closes when the thread ends

    # --- connecting -------------------------------------------------------------------

    def _options(self, socket_timeout: float | None) -> dict[str, Any]:
        return {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": socket_timeout,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
        }

    def _connect(self, socket_timeout: float | None) -> Any:
        if self.cluster:
            return redis.RedisCluster.from_url(self.url, **self._options(socket_timeout))
        return redis.Redis.from_url(self.url, **self._options(socket_timeout))

    def client(self) -> Any:
        """The command client, created (and the server asked whether it is a cluster) on first use."""
        if self._client is None:
            with self.errors("connect"):
                plain = redis.Redis.from_url(self.url, **self._options(COMMAND_TIMEOUT))
                try:
                    if plain.info("cluster").get("cluster_enabled") == 1:
                        self.cluster = True
                        plain.close()
                        plain = self._connect(COMMAND_TIMEOUT)
                except BaseException:
                    plain.close()
                    raise
            self._client = plain
        return self._client

    def blocking_client(self) -> Any:
        """A separate client for BLPOP, whose socket timeout outlasts the longest block."""
        if self._blocking is None:
            self.client()
            timeout = None if not self.block_for else self.block_for + BLOCKING_MARGIN
            self._blocking = self._connect(timeout)
        return self._blocking

    def close(self) -> None:
        for conn in list(self._owned):
            conn.disconnect()
        self._owned = weakref.WeakSet()
        self._local = threading.local()
        for client in (self._client, self._blocking):
            if client is not None:
                client.close()
        self._client = self._blocking = None

    # --- commands ---------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (rx.ConnectionError, rx.TimeoutError) as exc:
            raise DriverError(f"cannot reach Redis at {self.server} ({reason_of(exc)})") from exc
        except rx.RedisError as exc:
            raise DriverError(f"Redis at {self.server}: {action} failed: {reason_of(exc)}") from exc

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        with self.errors(script.name):
            if self.cluster:
                return self._run_on_cluster(script, keys, args)
            conn = self._connection()
            try:
                return command(conn, "EVALSHA", script.sha, len(keys), *keys, *args)
            except rx.NoScriptError:  # a restarted or flushed server: load it again, nothing ran
                command(conn, "SCRIPT", "LOAD", script.source)
                return command(conn, "EVALSHA", script.sha, len(keys), *keys, *args)

    def _run_on_cluster(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        client = self.client()
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except rx.NoScriptError:
            client.script_load(script.source)
            return client.evalsha(script.sha, len(keys), *keys, *args)

    def _connection(self) -> Any:
        """This thread's own connection, outside the pool: redis-py's per-command machinery (pool
        checkout, retry wrapper, metrics) costs more CPU than the round trip itself on the hot path."""
        if self._pid != os.getpid():  # a forked child must not talk on its parent's sockets
            self._pid, self._local, self._owned = os.getpid(), threading.local(), weakref.WeakSet()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.client().connection_pool.make_connection()
            self._owned.add(conn)
        elif conn._sock is not None and is_stale(conn):
            conn.disconnect()  # the next send reconnects
        return conn

    def run_many(self, calls: Sequence[Call]) -> list[Any]:
        """Script calls in one pipeline per server (one round trip); NOSCRIPT answers are sent again once."""
        results: list[Any] = [None] * len(calls)
        with self.errors("bulk push"):
            for client, indices in self._by_server(calls).items():
                self._pipeline(client, calls, indices, results)
        return results

    def _by_server(self, calls: Sequence[Call]) -> dict[Any, list[int]]:
        """Which plain client sends which calls: redis-py refuses EVALSHA in cluster pipelines,
        so on a cluster each node gets a plain pipeline of the calls whose keys it serves."""
        client = self.client()
        if not self.cluster:
            return {client: list(range(len(calls)))}
        grouped: dict[Any, list[int]] = {}
        for index, (_, keys, _) in enumerate(calls):
            node = client.get_redis_connection(client.get_node_from_key(keys[0]))
            grouped.setdefault(node, []).append(index)
        return grouped

    def _pipeline(self, client: Any, calls: Sequence[Call], pending: list[int], results: list[Any]) -> None:
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            for index in pending:
                script, keys, args = calls[index]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            missing = []
            for index, answer in zip(pending, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(answer, rx.NoScriptError):
                    missing.append(index)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    results[index] = answer
            if not missing:
                return
            for script in {calls[index][0] for index in missing}:
                client.script_load(script.source)
            pending = missing
        raise DriverError(f"Redis at {self.server}: scripts keep disappearing (SCRIPT FLUSH in a loop?)")

    def blpop(self, keys: Sequence[str], timeout: float) -> bool:
        """Block on the lists; True when a token was taken, False when the time ran out."""
        with self.errors("wait for a job"):
            return self.blocking_client().blpop(list(keys), timeout=timeout) is not None
