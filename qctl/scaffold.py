"""Files written from `templates/`: job modules and table migrations."""

from __future__ import annotations

import datetime as dt
import keyword
import re
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
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def make_job(name: str, directory: Path) -> Path:
    """Write `<directory>/<snake_name>.py` holding class `name`; never overwrites."""
    if not name.isidentifier() or keyword.iskeyword(name) or not name[0].isupper():
        raise UsageError(f"job name {name!r}: expected a class name like ProcessPodcast")
    target = directory / f"{snake_case(name)}.py"
    if target.exists():
        raise QctlError(f"{target} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    init = directory / "__init__.py"
    if not init.exists():
        init.write_text("", encoding="utf-8")
    target.write_text(render("job.py.tmpl", class_name=name), encoding="utf-8")
    return target


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
