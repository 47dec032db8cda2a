"""Every number a command takes is finite and within what the OS and the stores hold: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qctl.cli.app import run
from qctl.limits import MAX_SECONDS
from tests.support.processes import run_qctl


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("QCTL_CONFIG", "QCTL_CONNECTION", "QCTL_KEY", "QCTL_FAILED_DRIVER", "QCTL_HEARTBEAT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "args, expected",
    [
        (["work", "--timeout", "1e10"], "error: --timeout: expected 0 to 315360000 seconds, got 10000000000.0"),
        (["work", "--sleep", "inf"], "error: --sleep: expected 0 to 315360000 seconds, got inf"),
        (["work", "--sleep", "nan"], "error: --sleep: expected 0 to 315360000 seconds, got nan"),
        (["work", "--sleep", "-1"], "error: --sleep: expected 0 to 315360000 seconds, got -1.0"),
        (["work", "--rest", "1e309"], "error: --rest: expected 0 to 315360000 seconds, got inf"),
        (["work", "--max-time", "nan"], "error: --max-time: expected 0 to 315360000 seconds, got nan"),
        (["work", "--max-jobs", "99999999999999999999"], "error: --max-jobs: expected 0 to 2147483647, got 99999999999999999999"),
        (["work", "--tries", "2147483648"], "error: --tries: expected 0 to 2147483647, got 2147483648"),
        (["work", "--memory", "-5"], "error: --memory: expected 0 to 2147483647, got -5"),
        (["work", "--concurrency", "0"], "error: --concurrency: expected 1 to 256, got 0"),
        (["work", "--concurrency", "257"], "error: --concurrency: expected 1 to 256, got 257"),
        (["supervise", "--concurrency", "-1"], "error: --concurrency: expected 1 to 256, got -1"),
        (["work", "--backoff", "99999999999999999999"],
         "error: --backoff: expected 0 to 315360000 seconds each, got 99999999999999999999"),
        (["work", "--backoff", "1,5,-1"], "error: --backoff: expected 0 to 315360000 seconds each, got -1"),
        (["listen", "--poll", "inf"], "error: --poll: expected 0.05 to 315360000 seconds, got inf"),
        (["supervisor:config", "--stopwaitsecs", "99999999999"], "error: --stopwaitsecs: expected 1 to 315360000 seconds, got 99999999999"),
        (["supervisor:config", "--numprocs", "0"], "error: --numprocs: expected 1 to 2147483647, got 0"),
        (["supervise", "--timeout", "inf"], "error: --timeout: expected 0 to 315360000 seconds, got inf"),
        (["prune-failed", "--hours", "1e309"], "error: --hours: expected 0 to 87600 hours, got inf"),
        (["prune-failed", "--hours", "nan"], "error: --hours: expected 0 to 87600 hours, got nan"),
        (["flush", "--hours", "inf"], "error: --hours: expected 0 to 87600 hours, got inf"),
        (["prune-batches", "--hours", "1e20"], "error: --hours: expected 0 to 87600 hours, got 1e+20"),
        (["prune-batches", "--unfinished", "inf"], "error: --unfinished: expected 0 to 87600 hours, got inf"),
        (["prune-batches", "--cancelled", "nan"], "error: --cancelled: expected 0 to 87600 hours, got nan"),
        (["batches", "--limit", "0"], "error: --limit: expected 1 to 2147483647, got 0"),
        (["demo", "--jobs", "99999999999999999999"], "error: --jobs: expected 2 to 2147483647, got 99999999999999999999"),
        (["retry", "--range", "1-99999999999999999999999"],
         "error: --range '1-99999999999999999999999': row ids are expected 0 to 9223372036854775807, got 99999999999999999999999"),
    ],
)
def test_an_out_of_range_number_is_one_line_and_exit_2(here: Path, capsys: pytest.CaptureFixture[str],
                                                        args: list[str], expected: str) -> None:
    assert run(args) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == expected
    assert not (here / "qctl.sqlite").exists()  # refused before anything was opened


def test_the_largest_accepted_values_work(here: Path) -> None:
    """Ten years of timeout arms the OS timer (1e10 s overflowed setitimer and failed every job)."""
    (here / "qctl.toml").write_text('app = ["qctl_testjobs"]\n')
    pushed = subprocess.run([sys.executable, "-c", "from qctl_testjobs import Ok; Ok(7).dispatch()"], cwd=here,
                            capture_output=True, text=True, timeout=60, env=_env())
    assert pushed.returncode == 0, pushed.stderr
    big = str(MAX_SECONDS)
    worked = run_qctl(["work", "--once", "-v", "--timeout", big, "--backoff", big, "--tries", "2147483647"], here)
    assert worked.returncode == 0, worked.stderr
    assert " DONE " in worked.stdout
    pruned = run_qctl(["prune-failed", "--hours", "87600"], here)
    assert pruned.returncode == 0 and "Pruned 0 failed jobs older than 87600 hours." in pruned.stdout, pruned.stderr


def test_a_bad_number_in_a_real_process_has_no_traceback(here: Path) -> None:
    done = run_qctl(["work", "--once", "--timeout", "1e10"], here)
    assert done.returncode == 2
    assert done.stderr == "error: --timeout: expected 0 to 315360000 seconds, got 10000000000.0\n"


def test_heartbeat_seconds_from_the_environment_is_bounded(here: Path) -> None:
    for text in ("inf", "nan", "-1", "1e309"):
        done = run_qctl(["work", "--once", "--sleep", "0"], here, env={"QCTL_HEARTBEAT_SECONDS": text})
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: QCTL_HEARTBEAT_SECONDS: expected 0 to 315360000 seconds, got ")
        assert len(done.stderr.splitlines()) == 1


def _env() -> dict[str, str]:
    from tests.support.processes import qctl_env

    return qctl_env()
