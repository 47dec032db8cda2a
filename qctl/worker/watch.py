"""Noticing source changes for `qctl listen`, by polling modification times (no extra dependency).

What is watched: every `.py` file under the current directory and under each
`app` package, minus hidden directories, `__pycache__`, `node_modules`,
`site-packages` and virtualenvs (any directory holding a `pyvenv.cfg`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages", "dist-packages"})
Snapshot = dict[str, tuple[int, int]]


def app_roots(app_modules: Iterable[str]) -> list[Path]:
    """Where the `app` packages live, found without importing them (only top-level names are looked up)."""
    roots: list[Path] = []
    for module in app_modules:
        try:
            spec = importlib.util.find_spec(module.split(".")[0])
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots.extend(Path(location) for location in spec.submodule_search_locations)
        elif spec.origin and spec.origin not in ("built-in", "frozen"):
            roots.append(Path(spec.origin))
    return roots


def distinct_roots(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Absolute, without duplicates, and without any path that sits inside another one."""
    resolved = sorted({path.resolve() for path in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in resolved:
        if not any(path.is_relative_to(root) for root in kept):
            kept.append(path)
    return tuple(kept)


def is_skipped(directory: str, name: str) -> bool:
    return (name.startswith(".") or name in SKIPPED_DIRECTORIES
            or os.path.exists(os.path.join(directory, name, "pyvenv.cfg")))


def scan(roots: Iterable[Path], suffixes: tuple[str, ...] = (".py",)) -> Snapshot:
    """Every watched file and its (mtime in ns, size)."""
    found: Snapshot = {}
    for root in roots:
        if root.is_file():
            _note(found, str(root))
            continue
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if not is_skipped(directory, d)]
            for name in files:
                if name.endswith(suffixes):
                    _note(found, os.path.join(directory, name))
    return found


def _note(found: Snapshot, path: str) -> None:
    try:
        info = os.stat(path)
    except OSError:
        return  # deleted while scanning: the next scan reports it
    found[path] = (info.st_mtime_ns, info.st_size)


class SourceWatcher:
    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = distinct_roots(roots)
        self.snapshot = scan(self.roots)

    @property
    def file_count(self) -> int:
        return len(self.snapshot)

    def changes(self) -> list[str]:
        """Files added, removed or modified since the last call (sorted)."""
        current = scan(self.roots)
        changed = {path for path in current.keys() | self.snapshot.keys() if current.get(path) != self.snapshot.get(path)}
        self.snapshot = current
        return sorted(changed)
