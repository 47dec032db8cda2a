"""The real servers the suite talks to. Outside CI a missing server skips with a reason;
with CI=true it fails loudly, so a green CI run always means every backend was tested."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get("QCTL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("QCTL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("QCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

PORTS = {"postgresql": ("127.0.0.1", 5432), "mariadb": ("127.0.0.1", 3306), "redis": ("127.0.0.1", 6379)}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(kind: str) -> bool:
    host, port = PORTS[kind]
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require(kind: str) -> None:
    """Skip (locally) or fail (CI) when the server for `kind` is not up."""
    if kind in ("sqlite", "memory") or reachable(kind):
        return
    message = f"{kind} is not reachable at {PORTS[kind][0]}:{PORTS[kind][1]}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: server tests must not be skipped)")
    pytest.skip(message)


def url_for(kind: str, tmp_path: os.PathLike[str]) -> str:
    if kind == "sqlite":
        return f"sqlite:///{os.fspath(tmp_path)}/qctl.sqlite"
    if kind == "postgresql":
        return POSTGRES_URL
    if kind == "mariadb":
        return MARIADB_URL
    if kind == "redis":
        return REDIS_URL
    raise ValueError(kind)
