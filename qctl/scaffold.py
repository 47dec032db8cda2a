"""Files written from `templates/`: job modules and table migrations."""

from __future__ import annotations

import datetime as dt
import importlib.util
import keyword
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Table

from qctl.errors import QctlError, UsageError

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """Inside the wheel the templates ship as qctl/templates; in a checkout they sit beside qctl/."""
    for candidate in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise QctlError("qctl's templates/ folder is missing from this installation")


def render(template: str, **values: str) -> str:
    text = (templates_dir() / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def snake_case(name: str) -> str:
    """ProcessPodcast → process_podcast; an acronym stays one word: SendHTTPRequest → send_http_request."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def make_job(name: str, directory: Path, project: Path | None = None) -> tuple[Path, str]:
    """Write `<directory>/<snake_name>.py` holding class `name`; never overwrites.

    Returns the file and what to list in `app` for it (the dotted package, or the module itself
    when it sits in the project directory). A directory workers could not import it from is refused.
    """
    module = job_module(name)
    package = importable_package(directory, project or Path.cwd())
    target = directory / f"{module}.py"
    if target.exists():
        raise QctlError(f"{target} already exists; not overwriting it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("", encoding="utf-8")
        target.write_text(render("job.py.tmpl", class_name=name), encoding="utf-8")
    except OSError as exc:
        raise QctlError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target, ".".join(filter(None, (package, "" if package else module)))


def job_module(name: str) -> str:
    """The module a job class is written to: ProcessPodcast → process_podcast."""
    if not name.isidentifier() or keyword.iskeyword(name) or not name[0].isupper():
        raise UsageError(f"job name {name!r}: expected a class name like ProcessPodcast")
    module = snake_case(name)
    if keyword.iskeyword(module):
        raise UsageError(f"job name {name!r}: its module would be {module}.py, and {module!r} is a Python keyword")
    return module


def importable_package(directory: Path, project: Path) -> str:
    """The dotted package `directory` is for workers, who import from the project directory ('' for the
    project directory itself); UsageError when it is a file or no package a worker could import."""
    shown = str(directory)
    if directory.suffix == ".py":
        raise UsageError(f"--path {shown!r}: expected a package directory (like jobs), not a .py file")
    resolved = (project / directory).resolve()
    existing = next(path for path in (resolved, *resolved.parents) if path.exists())
    if not existing.is_dir():
        raise UsageError(f"--path {shown!r}: {existing} is not a directory")
    try:
        parts = resolved.relative_to(project.resolve()).parts
    except ValueError:
        raise UsageError(f"--path {shown!r} is outside the project directory {project}, where workers "
                         "import `app` packages from; choose a directory inside it") from None
    for part in parts:
        if not part.isidentifier() or keyword.iskeyword(part):
            raise UsageError(f"--path {shown!r}: {part!r} is not an importable package name (letters, digits and '_', "
                             "not starting with a digit, not a Python keyword), so workers could never import the job")
    taken = parts and taken_elsewhere(parts[0], project.resolve())
    if taken:
        raise UsageError(f"--path {shown!r}: {parts[0]!r} is {taken}, which workers would import instead of this package")
    return ".".join(parts)


def taken_elsewhere(top: str, project: Path) -> str | None:
    """What a top-level name already imports from outside the project (a stdlib module, an installed package)."""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "the name of a standard-library module"
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    places = [Path(place) for place in (spec.submodule_search_locations or [spec.origin or ""]) if place]
    if any(place.resolve().is_relative_to(project) for place in places):
        return None
    return f"an installed package ({places[0] if places else top})"


Made = tuple[Table, str, str]
"""A table a migration creates, the `qctl.db.schema` function building it and that function's argument."""


def described(tables: Sequence[Table]) -> str:
    names = [table.name for table in tables]
    return f"the {names[0]} table" if len(names) == 1 else f"the {', '.join(names[:-1])} and {names[-1]} tables"


def write_sql_migration(tables: Sequence[Table], sql: str, directory: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y_%m_%d_%H%M%S")
    target = directory / f"{stamp}_create_{tables[0].name}_table.sql"
    if target.exists():
        raise QctlError(f"{target} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(f"-- qctl: create {described(tables)}\n\n{sql}", encoding="utf-8")
    return target


def write_alembic_revision(made: Sequence[Made], alembic_ini: Path) -> Path:
    """A revision on top of the project's current Alembic head that creates the tables (dropped in reverse)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(AlembicConfig(str(alembic_ini)))
    head = script.get_current_head()
    revision = uuid.uuid4().hex[:12]
    versions = Path(script.versions)
    versions.mkdir(parents=True, exist_ok=True)
    tables = [table for table, _, _ in made]
    target = versions / f"{revision}_create_{tables[0].name}_table.py"
    calls = [f"{function}({argument!r})" for _, function, argument in made]
    text = render(
        "alembic_revision.py.tmpl",
        description=f"create {described(tables)} (qctl)",
        revision=revision,
        down_revision=repr(head),
        down_revision_comment=head or "",
        created=dt.datetime.now().isoformat(sep=" ", timespec="seconds"),
        table_function=", ".join(dict.fromkeys(function for _, function, _ in made)),
        upgrade_body="\n".join(f"    {call}.create(op.get_bind(), checkfirst=True)" for call in calls),
        downgrade_body="\n".join(f"    {call}.drop(op.get_bind(), checkfirst=True)" for call in reversed(calls)),
    )
    target.write_text(text, encoding="utf-8")
    return target
