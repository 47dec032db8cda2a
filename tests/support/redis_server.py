"""A private `redis-server` for tests that stop, restart or cluster Redis: never the shared one on 6379."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.support.services import in_ci


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed"
        if in_ci():
            pytest.fail(f"{message} (CI=true: server tests must not be skipped)")
        pytest.skip(message)
    return found


class PrivateRedis:
    """One redis-server on a free port with AOF `always` in `directory`; start/stop/restart at will."""

    def __init__(self, directory: Path, port: int | None = None, cluster: bool = False,
                 slots: tuple[int, int] | None = (0, 16383)) -> None:
        """`cluster` starts a cluster node that serves `slots` (first, last) alone; with `slots=None`
        it starts with none, for the caller to join to other nodes (`join_cluster`)."""
        self.binary = require_redis_server()
        self.directory = directory
        self.port = port or free_port()
        self.cluster = cluster
        self.slots = slots
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
        if self.cluster:
            self.bus_port = getattr(self, "bus_port", None) or free_port()  # the default (port + 10000) may not exist
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf",
                     "--cluster-port", str(self.bus_port)]
        return args

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=1)
                client.ping()
                if self.cluster and self.slots is not None:
                    self._assign_all_slots(client)
                client.close()
                return
            except (redis.ConnectionError, redis.ResponseError):
                time.sleep(0.1)
        raise AssertionError(f"private redis-server on port {self.port} did not start")

    def _assign_all_slots(self, client: redis.Redis) -> None:
        if client.execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") >= 0:
            return
        with contextlib.suppress(redis.ResponseError):  # already assigned on a restart
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", *(self.slots or (0, 16383)))
        deadline = time.monotonic() + 20
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise AssertionError("single-node cluster did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        """SHUTDOWN (the AOF is already fsynced on every write) and wait for the process."""
        if self.process is None:
            return
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=self.port, socket_connect_timeout=1).shutdown(nosave=True)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=2)


def join_cluster(nodes: list[PrivateRedis], ranges: list[tuple[int, int]]) -> None:
    """Give node i the slots ranges[i], introduce every node to the first, and wait until each
    sees all of them and says cluster_state:ok."""
    for node, (first, last) in zip(nodes, ranges, strict=True):
        node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        nodes[0].client().execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
    deadline = time.monotonic() + 30
    while True:
        ready = [node.client() for node in nodes]
        if all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
               and len(c.execute_command("CLUSTER", "NODES").decode().strip().splitlines()) == len(nodes)
               for c in ready):
            return
        if time.monotonic() > deadline:
            raise AssertionError("the private cluster did not come together")
        time.sleep(0.1)


def move_slot(slot: int, source: PrivateRedis, target: PrivateRedis) -> None:
    """Hand a slot and its keys from `source` to `target` the way a resharding does, telling both
    nodes (clients that cached the old owner get MOVED from it until they refresh)."""
    source_id = source.client().execute_command("CLUSTER", "MYID").decode()
    target_id = target.client().execute_command("CLUSTER", "MYID").decode()
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    keys = source.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10_000)
    if keys:
        source.client().execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    for node in (target, source):
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
