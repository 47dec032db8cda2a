"""Worker options go out as CLI arguments (listen, supervise, supervisor:config) and come back unchanged."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from qctl.cli import options
from qctl.worker.options import WorkerOptions

NOT_DEFAULT = WorkerOptions(
    name="mailer", queues=("high", "default"), once=True, stop_when_empty=True, max_jobs=5, max_time=3600,
    memory=256, sleep=0.5, rest=0.25, tries=3, backoff=(1, 5, 10), timeout=45, force=True, quiet=True, log_format="json",
    concurrency=8,
)


def parse_back(args: list[str]) -> WorkerOptions:
    seen: list[WorkerOptions] = []
    app = typer.Typer()

    @app.command()
    @options.takes_worker_options
    def work(connection: options.Connection = None, *, worker: WorkerOptions) -> None:
        seen.append(worker)

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return seen[0]


def test_defaults_give_no_arguments_and_parse_back_to_defaults() -> None:
    assert WorkerOptions().to_cli_args() == []
    assert parse_back([]) == WorkerOptions()


def test_every_option_survives_the_round_trip() -> None:
    args = NOT_DEFAULT.to_cli_args()
    assert args[:4] == ["--name", "mailer", "--queue", "high,default"] and "--force" in args and "--backoff" in args
    assert parse_back(args) == NOT_DEFAULT


def test_every_worker_option_field_has_a_cli_option() -> None:
    from dataclasses import fields

    changed = {f.name for f in fields(WorkerOptions) if getattr(NOT_DEFAULT, f.name) != getattr(WorkerOptions(), f.name)}
    assert changed == {f.name for f in fields(WorkerOptions)}  # NOT_DEFAULT really changes each one


def test_the_cli_defaults_are_the_library_defaults() -> None:
    defaults = options.default_worker_values()
    assert defaults["memory"] == WorkerOptions().memory == 128
    assert defaults["timeout"] == WorkerOptions().timeout
    assert set(defaults) == set(options.WORKER_OPTION_TYPES)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"timeout": 1e10}, "WorkerOptions.timeout: expected 0 to 315360000 seconds, got 10000000000.0"),
        ({"sleep": float("nan")}, "WorkerOptions.sleep: expected 0 to 315360000 seconds, got nan"),
        ({"max_jobs": -1}, "WorkerOptions.max_jobs: expected 0 to 2147483647, got -1"),
        ({"backoff": (1, 10**20)}, "WorkerOptions.backoff: expected 0 to 315360000 seconds each, got 100000000000000000000"),
    ],
)
def test_worker_options_from_code_meet_the_same_bounds(changes: dict[str, object], expected: str) -> None:
    from qctl.errors import UsageError

    with pytest.raises(UsageError) as refused:
        WorkerOptions(**changes)  # type: ignore[arg-type]
    assert str(refused.value) == expected


def test_the_quick_work_line_reads_every_option_as_typer_does() -> None:
    """`qctl work` runs without Typer when its line is plain (qctl.cli.work_run): same options, same values."""
    from qctl.cli.work_run import parse_work_line

    args = NOT_DEFAULT.to_cli_args()
    line = parse_work_line(["--config", "q.toml", "work", "redis", *args, "-v"])
    assert line is not None and line.worker == NOT_DEFAULT == parse_back(args)
    assert (line.config_path, line.connection, line.verbose) == ("q.toml", "redis", True)
    joined = parse_work_line(["work", "--sleep=0.5", "--queue=high,low", "-q"])
    assert joined is not None and (joined.worker.sleep, joined.worker.queues, joined.worker.quiet) == (0.5, ("high", "low"), True)
    for left_to_typer in (["work", "--help"], ["work", "--once", "--once"], ["work", "--sleep", "-1"],
                          ["work", "a", "b"], ["work", "--tries", "x"], ["work", "--log-format", "xml"], ["failed"]):
        assert parse_work_line(left_to_typer) is None, left_to_typer
