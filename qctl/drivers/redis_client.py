"""The Redis connection of one qctl connection: lazy clients, cluster detection, scripts by SHA,
and every redis-py error turned into one clear `DriverError` line naming the server.

Nothing connects until the first command. redis-py's own retries are off: a reserve or push
must not run twice behind the caller's back; the worker's backoff does the retrying.
"""

from __future__ import annotations

import functools
import os
import re
import resource
import select
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import hiredis
import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from qctl.drivers.scripts import Script
from qctl.errors import DriverError, StoreRefusedError

Call = tuple[Script, Sequence[str], Sequence[str | bytes]]
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
BLOCKING_MARGIN = 10.0


@functools.cache
def client_identity() -> dict[str, Any]:
    """The `redis.Redis` keyword that names this client to the server (CLIENT SETINFO): redis-py's
    version as its package states it — left to itself, redis-py asks importlib.metadata on every
    new connection, which costs a worker's start-up tens of milliseconds — with qctl as its user."""
    from qctl.__about__ import __version__

    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before 8 takes the version alone
        return {"lib_version": redis.__version__}
    return {"driver_info": DriverInfo(lib_version=redis.__version__).add_upstream_driver("qctl", __version__)}


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


REFUSALS = ("DB index is out of range", "NOAUTH", "WRONGPASS", "NOPERM", "invalid password", "invalid username-password")
"""Replies that mean this URL will never work (a missing database index, a wrong or missing password, an ACL)."""
NO_PASSWORD_GIVEN = ("Authentication required", "must be called with the client already authenticated")


def refusal(exc: BaseException, where: str, server: str) -> StoreRefusedError | None:
    """The error for a server that refuses this URL for good (naming the config key `where`), or None."""
    permanent = isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError | rx.NoPermissionError)
    if not permanent and not any(text in str(exc) for text in REFUSALS):
        return None
    reason = reason_of(exc)
    if any(text in reason for text in NO_PASSWORD_GIVEN):
        reason = "it asks for a password and the URL gives none (redis://:PASSWORD@host)"
    return StoreRefusedError(f"{where + ': ' if where else ''}Redis at {server} refused: {reason}")


READ_CHUNK = 65536
SPIN_PAUSE_CAP = 1024
"""After a reply that outlasted the poll window, up to this many calls sleep on the socket without polling first."""
CAN_SPIN = (os.cpu_count() or 1) > 1
CROWDING_LOOK_EVERY = 256
"""Polled calls between two looks at how often the thread lost its CPU to another runnable task."""
CROWDED_SHARE = 8
"""Crowded: more than one in this many polled calls saw the thread preempted. Then the CPU a poll
holds is one another worker or Redis itself is waiting for, so polling stops for SPIN_PAUSE_CAP calls."""
RUSAGE_WHO = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def preemptions() -> int:
    """Involuntary context switches of this thread (of the process where threads are not counted apart)."""
    return resource.getrusage(RUSAGE_WHO).ru_nivcsw


class Wire:
    """A connection one thread keeps for itself, spoken to without redis-py's command path.

    redis-py opens it (TCP, TLS or a unix socket, AUTH, SELECT) and closes it; hiredis packs
    each command and parses each reply straight off the socket. On the worker's hot path
    redis-py's per-command layers (health checks, pool bookkeeping, metrics hooks, a parser
    that polls before it reads) cost more CPU than the round trip itself.
    """

    def __init__(self, conn: Any, spin: float = 0.0) -> None:
        self.conn = conn
        self.reader = hiredis.Reader()
        self.buffer = bytearray(READ_CHUNK)
        self.poller: Any = None
        self.polled: Any = None
        self.spin = spin if CAN_SPIN else 0.0  # seconds to poll for a reply before sleeping on it
        self.spin_pause = 0  # calls left that go straight to sleep
        self.spin_misses = 0  # replies in a row that outlasted the spin
        self.polled_calls = 0  # since the last look at preemptions
        self.preempted = preemptions() if self.spin else 0  # not counting those of the start-up

    def call(self, *args: Any) -> Any:
        """One command, one reply; an error reply is raised as redis-py's exception."""
        reply = self.call_many((args,))[0]
        if isinstance(reply, rx.RedisError):
            raise reply
        return reply

    def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Commands in one write, their replies in order (error replies as exception objects, not raised).

        Any failure closes the connection (the next call reconnects), so a reply can never be read
        as the answer to a later command, and commands Redis has not run yet are dropped with it.
        """
        conn = self.conn
        sock = conn._sock
        if sock is None or self.is_stale(sock):
            sock = self.reconnect()
        try:
            if len(commands) == 1:
                sock.sendall(hiredis.pack_command(tuple(commands[0])))
            else:
                sock.sendall(b"".join(hiredis.pack_command(tuple(command)) for command in commands))
            reader, buffer = self.reader, self.buffer
            replies: list[Any] = []
            while len(replies) < len(commands):
                reply = reader.gets()
                if reply is False and self.spin:
                    self.await_reply(sock)
                while reply is False:
                    count = sock.recv_into(buffer)
                    if not count:
                        raise rx.ConnectionError("Connection closed by server")
                    reader.feed(buffer, 0, count)  # type: ignore[arg-type]  # hiredis takes any buffer
                    reply = reader.gets()
                replies.append(reply_error(str(reply)) if isinstance(reply, hiredis.ReplyError) else reply)
        except TimeoutError as exc:
            self.close()
            raise rx.TimeoutError("Timeout reading from socket") from exc
        except OSError as exc:
            self.close()
            raise rx.ConnectionError(f"Error while talking to the server: {exc}") from exc
        except hiredis.ProtocolError as exc:
            self.close()
            raise rx.ConnectionError(f"Protocol error: {exc}") from exc
        except BaseException:
            self.close()
            raise
        return replies

    def await_reply(self, sock: Any) -> None:
        """Poll the socket for up to `spin` seconds (`busy_poll_us`) before the caller's recv sleeps.

        A thread that sleeps on a socket is woken by the kernel when the reply lands; on a virtual
        machine that wake-up (an idle vCPU halted, then an interrupt to bring it back) can take
        longer than Redis takes to answer. Replies from a Redis on the same host or a near one come
        well inside the window, so polling for them costs little more CPU than the wake-up it saves. When a
        reply does not (a far Redis, a busy one), the next calls skip the polling, twice as many after
        each further miss (up to SPIN_PAUSE_CAP), so a slow server costs a few polls, not a core.
        A thread that keeps losing its CPU to other runnable tasks stops polling for SPIN_PAUSE_CAP
        calls too: there the poll would hold a CPU that another worker, or Redis, is waiting for.
        """
        if self.spin_pause:
            self.spin_pause -= 1
            return
        self.polled_calls += 1
        if self.polled_calls >= CROWDING_LOOK_EVERY and self.crowded():
            self.spin_pause = SPIN_PAUSE_CAP
            return
        poll = self.poller.poll
        clock = time.perf_counter
        give_up = clock() + self.spin
        while not poll(0):
            if clock() > give_up:
                self.spin_misses = min(self.spin_misses + 1, SPIN_PAUSE_CAP.bit_length())
                self.spin_pause = min(SPIN_PAUSE_CAP, 1 << self.spin_misses)
                return
        self.spin_misses = 0

    def crowded(self) -> bool:
        """Whether more than one in CROWDED_SHARE of the calls polled since the last look saw this
        thread preempted (more runnable tasks than CPUs: other workers, Redis on the same host)."""
        now = preemptions()
        crowded = (now - self.preempted) * CROWDED_SHARE > self.polled_calls
        self.preempted, self.polled_calls = now, 0
        return crowded

    def reconnect(self) -> Any:
        self.close()
        self.conn.connect()  # raises redis-py's ConnectionError / TimeoutError
        self.reader = hiredis.Reader()
        self.watch(self.conn._sock)
        return self.conn._sock

    def is_stale(self, sock: Any) -> bool:
        """An idle connection with something to read was closed by the server (a restart) or left dirty."""
        if self.polled is not sock:
            self.watch(sock)
        try:
            return bool(self.poller.poll(0))
        except OSError:
            return True

    def watch(self, sock: Any) -> None:
        self.poller, self.polled = select.poll(), sock
        self.poller.register(sock, select.POLLIN)

    def close(self) -> None:
        self.conn.disconnect()


def load_and_run(wire: Wire, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
    """After NOSCRIPT (a restarted or flushed server; nothing ran): load the script and run it again."""
    wire.call("SCRIPT", "LOAD", script.source)
    return wire.call("EVALSHA", script.sha, len(keys), *keys, *args)


def reply_error(message: str) -> rx.RedisError:
    """redis-py's exception for an error reply, for the cases qctl tells apart."""
    if message.startswith("NOSCRIPT"):
        return rx.NoScriptError(message)
    if message.startswith("LOADING"):
        return rx.BusyLoadingError(message)
    return rx.ResponseError(message)


class RedisClient:
    def __init__(self, url: str, block_for: float | None, busy_poll: float = 0.0, where: str = "") -> None:
        self.url = url
        self.where = where  # the config key of the URL, for a refusal that retrying cannot heal
        self.busy_poll = busy_poll
        self.server = server_of(url)
        self.block_for = block_for
        self.cluster = False
        self._client: Any = None
        self._blocking: Any = None
        self._local = threading.local()
        self._pid = os.getpid()
        self._owned: weakref.WeakSet[Wire] = weakref.WeakSet()  # a thread's connection closes when the thread ends
        self._blocking_wire_conn: Wire | None = None
        self._blocking_wire_of = 0

    # --- connecting -------------------------------------------------------------------

    def _options(self, socket_timeout: float | None) -> dict[str, Any]:
        return {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": socket_timeout,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
            **client_identity(),
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
        for wire in list(self._owned):
            wire.close()
        self._owned = weakref.WeakSet()
        self._local = threading.local()
        self._blocking_wire_conn = None
        for client in (self._client, self._blocking):
            if client is not None:
                client.close()
        self._client = self._blocking = None

    # --- commands ---------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except rx.RedisError as exc:
            raise self.driver_error(action, exc) from exc

    def driver_error(self, action: str, exc: rx.RedisError) -> DriverError:
        refused = refusal(exc, self.where, self.server)
        if refused is not None:
            return refused
        if isinstance(exc, rx.ConnectionError | rx.TimeoutError):
            return DriverError(f"cannot reach Redis at {self.server} ({reason_of(exc)})")
        return DriverError(f"Redis at {self.server}: {action} failed: {reason_of(exc)}")

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        try:  # not `errors()`: this is the hot path, and a generator-based context costs a few µs
            if self.cluster:
                return self._run_on_cluster(script, keys, args)
            wire = self._wire()
            try:
                return wire.call("EVALSHA", script.sha, len(keys), *keys, *args)
            except rx.NoScriptError:
                return load_and_run(wire, script, keys, args)
        except rx.RedisError as exc:
            raise self.driver_error(script.name, exc) from exc

    def run_guarded(self, guard: Call, main: Call) -> tuple[Any, Any]:
        """Two script calls in one write (not on a cluster): `guard` first, then `main`. `main`'s error is
        raised; `guard`'s comes back as its reply (an error object: the guard did not run). A script
        the server lost (NOSCRIPT) is loaded; only `main` is run again."""
        try:
            wire = self._wire()
            replies = wire.call_many([("EVALSHA", c[0].sha, len(c[1]), *c[1], *c[2]) for c in (guard, main)])
            granted, result = replies
            if isinstance(granted, rx.NoScriptError):
                wire.call("SCRIPT", "LOAD", guard[0].source)
            if isinstance(result, rx.NoScriptError):
                result = load_and_run(wire, *main)
            elif isinstance(result, rx.RedisError):
                raise result
            return granted, result
        except rx.RedisError as exc:
            raise self.driver_error(main[0].name, exc) from exc

    def _run_on_cluster(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        client = self.client()
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except rx.NoScriptError:
            client.script_load(script.source)
            return client.evalsha(script.sha, len(keys), *keys, *args)

    def _wire(self) -> Wire:
        """This thread's own connection, outside the pool (see `Wire`)."""
        if self._pid != os.getpid():  # a forked child must not talk on its parent's sockets
            self._pid, self._local, self._owned = os.getpid(), threading.local(), weakref.WeakSet()
        wire: Wire | None = getattr(self._local, "wire", None)
        if wire is None:
            wire = self._local.wire = Wire(self.client().connection_pool.make_connection(), self.busy_poll)
            self._owned.add(wire)
        return wire

    def transaction(self, commands: Sequence[Sequence[Any]], scripts: Sequence[Script] = ()) -> list[Any]:
        """The commands in one MULTI/EXEC, sent in one write (not on a cluster): Redis runs them one after
        another with nothing in between. An EVALSHA of one of `scripts` that the server lost (NOSCRIPT:
        it ran nothing) is loaded and run once more after the others; any other error reply is raised
        (Redis has run the rest: EXEC does not roll back)."""
        try:
            wire = self._wire()
            results = wire.call_many([("MULTI",), *commands, ("EXEC",)])[-1]
            if isinstance(results, rx.RedisError):  # EXECABORT: a command was refused, none ran
                raise results
            replies = [reply_error(str(r)) if isinstance(r, hiredis.ReplyError) else r for r in results]
            for index, reply in enumerate(replies):
                if isinstance(reply, rx.NoScriptError):
                    command = commands[index]
                    lost = next(script for script in scripts if script.sha == command[1])
                    replies[index] = load_and_run(wire, lost, command[3:3 + int(command[2])], command[3 + int(command[2]):])
            failed = next((reply for reply in replies if isinstance(reply, rx.RedisError)), None)
            if failed is not None:
                raise failed
            return replies
        except rx.RedisError as exc:
            raise self.driver_error("bulk push", exc) from exc

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
            missing, redirected = [], []
            for index, answer in zip(pending, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(answer, rx.NoScriptError):
                    missing.append(index)
                elif isinstance(answer, rx.MovedError | rx.AskError):
                    redirected.append(index)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    results[index] = answer
            for index in redirected:  # a slot being resharded: that node ran nothing; the cluster client follows
                script, keys, args = calls[index]
                results[index] = self._run_on_cluster(script, keys, args)
            if not missing:
                return
            for script in {calls[index][0] for index in missing}:
                client.script_load(script.source)
            pending = missing
        raise DriverError(f"Redis at {self.server}: scripts keep disappearing (SCRIPT FLUSH in a loop?)")

    def _blocking_wire(self) -> Wire:
        """The connection that blocks; its socket timeout outlasts the longest block."""
        if self._blocking_wire_of != os.getpid() or self._blocking_wire_conn is None:
            self._blocking_wire_conn = Wire(self.blocking_client().connection_pool.make_connection())
            self._blocking_wire_of = os.getpid()
            self._owned.add(self._blocking_wire_conn)
        return self._blocking_wire_conn

    def blpop_then_run(self, lists: Sequence[str], timeout: float, script: Script, keys: Sequence[str],
                       args: Sequence[str | bytes]) -> Any:
        """BLPOP the lists and, in the same write, run the script: Redis runs it the moment the BLPOP
        returns (a token taken or the time up), so a woken worker has its answer without another
        round trip. Not on a cluster (the lists and the script's keys may live on other nodes)."""
        try:
            wire = self._blocking_wire()
            woken, result = wire.call_many((
                ("BLPOP", *lists, repr(float(timeout))),
                ("EVALSHA", script.sha, len(keys), *keys, *args),
            ))
            if isinstance(woken, rx.RedisError):
                raise woken
            if isinstance(result, rx.NoScriptError):
                return load_and_run(wire, script, keys, args)
            if isinstance(result, rx.RedisError):
                raise result
            return result
        except rx.RedisError as exc:
            raise self.driver_error("wait for a job", exc) from exc

    def blpop(self, keys: Sequence[str], timeout: float) -> bool:
        """Block on the lists; True when a token was taken, False when the time ran out."""
        with self.errors("wait for a job"):
            return self.blocking_client().blpop(list(keys), timeout=timeout) is not None
