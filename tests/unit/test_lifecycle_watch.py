"""`qctl listen`'s source watcher: which files count, and which changes it reports."""

from __future__ import annotations

import os
from pathlib import Path

from qctl.worker.listener import ends_by_itself
from qctl.worker.options import WorkerOptions
from qctl.worker.watch import SourceWatcher, app_roots, distinct_roots, scan


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_edits_additions_and_deletions_are_reported_once(tmp_path: Path) -> None:
    job = write(tmp_path / "app" / "jobs.py", "A = 1\n")
    watcher = SourceWatcher([tmp_path])
    assert watcher.changes() == []
    write(job, "A = 2\n")
    os.utime(job, ns=(job.stat().st_atime_ns, job.stat().st_mtime_ns + 1_000_000))
    assert watcher.changes() == [str(job)]
    assert watcher.changes() == []
    added = write(tmp_path / "app" / "more.py", "")
    assert watcher.changes() == [str(added)]
    added.unlink()
    assert watcher.changes() == [str(added)]


def test_pycache_hidden_directories_and_virtualenvs_are_not_watched(tmp_path: Path) -> None:
    kept = write(tmp_path / "app" / "jobs.py", "")
    write(tmp_path / "app" / "__pycache__" / "jobs.cpython-311.py", "")
    write(tmp_path / ".git" / "hook.py", "")
    write(tmp_path / "env" / "pyvenv.cfg", "")
    write(tmp_path / "env" / "lib" / "site.py", "")
    write(tmp_path / "node_modules" / "x.py", "")
    write(tmp_path / "notes.txt", "")
    assert list(scan([tmp_path])) == [str(kept)]


def test_roots_are_absolute_and_never_nested(tmp_path: Path) -> None:
    inner = tmp_path / "app"
    inner.mkdir()
    assert distinct_roots([inner, tmp_path, tmp_path / "." / "app"]) == (tmp_path.resolve(),)


def test_app_packages_are_found_without_being_imported(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "pkg_watch_probe" / "__init__.py", "raise RuntimeError('must not be imported')\n")
    write(tmp_path / "single_watch_probe.py", "raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    roots = app_roots(["pkg_watch_probe.jobs", "single_watch_probe", "no_such_module_here"])
    assert roots == [tmp_path / "pkg_watch_probe", tmp_path / "single_watch_probe.py"]


def test_which_options_end_a_worker_by_themselves() -> None:
    assert not ends_by_itself(WorkerOptions())
    assert all(ends_by_itself(o) for o in (WorkerOptions(once=True), WorkerOptions(stop_when_empty=True),
                                           WorkerOptions(max_jobs=3), WorkerOptions(max_time=60)))
