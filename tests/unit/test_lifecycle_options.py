"""Worker options go out as CLI arguments (listen, supervise, supervisor:config) and come back unchanged."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from qctl.cli import options
from qctl.worker.options import WorkerOptions

NOT_DEFAULT = WorkerOptions(
    name="mailer", queues=("high", "default"), once=True, stop_when_empty=True, max_jobs=5, max_time=3600,
    memory=256, sleep=0.5, rest=0.25, tries=3, backoff=(1, 5, 10), timeout=45, force=True,
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
