"""Files written from `templates/`: job modules and table migrations."""

from __future__ import annotations

import datetime as dt
import keyword
import re
import uuid
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


def write_sql_migration(table: Table, sql: str, directory: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y_%m_%d_%H%M%S")
    target = directory / f"{stamp}_create_{table.name}_table.sql"
    if target.exists():
        raise QctlError(f"{target} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(f"-- qctl: create the {table.name} table\n\n{sql}", encoding="utf-8")
    return target


def write_alembic_revision(table: Table, table_function: str, alembic_ini: Path) -> Path:
    """A revision on top of the project's current Alembic head that creates the table."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(AlembicConfig(str(alembic_ini)))
    head = script.get_current_head()
    revision = uuid.uuid4().hex[:12]
    versions = Path(script.versions)
    versions.mkdir(parents=True, exist_ok=True)
    target = versions / f"{revision}_create_{table.name}_table.py"
    call = f"{table_function}({table.name!r})"
    text = render(
        "alembic_revision.py.tmpl",
        description=f"create the {table.name} table (qctl)",
        revision=revision,
        down_revision=repr(head),
        down_revision_comment=head or "",
        created=dt.datetime.now().isoformat(sep=" ", timespec="seconds"),
        table_function=table_function,
        upgrade_body=f"    {call}.create(op.get_bind(), checkfirst=True)",
        downgrade_body=f"    {call}.drop(op.get_bind(), checkfirst=True)",
    )
    target.write_text(text, encoding="utf-8")
    return target
