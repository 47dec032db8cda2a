"""Supervisord config text from `templates/`: a program section, and the private header `supervise` adds."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

from qctl import scaffold
from qctl.__about__ import __version__
from qctl.supervisor.program import Program


def escape(value: str) -> str:
    """Supervisord expands %(name)s in values, so a literal % must be doubled."""
    return value.replace("%", "%%")


def numbered_command(program: Program) -> str:
    """The command line with `--name NAME-%(process_num)02d`: the one % supervisord must expand."""
    name = shlex.quote(escape(program.worker_name) + "-") + "%(process_num)02d"
    return f"{escape(shlex.join(program.command))} --name {name}"


def render_program(program: Program) -> str:
    return scaffold.render(
        "supervisor.conf.tmpl",
        program=program.name,
        command=numbered_command(program),
        directory=escape(program.directory),
        user=program.user,
        numprocs=str(program.numprocs),
        log=program.log,  # program_for refuses a '%' here: supervisord expands log names twice
        log_maxbytes=program.log_maxbytes,
        stopwaitsecs=str(program.stopwaitsecs),
        version=__version__,
    )


def render_private_supervisord(directory: Path, program: Program) -> str:
    """A whole supervisord config: its own log, pidfile and socket in `directory`, then the program."""
    header = scaffold.render("supervisord.conf.tmpl", directory=escape(str(directory)), user=program.user,
                             password=secrets.token_hex(16))  # the socket is private anyway; this keeps supervisord quiet
    return header + render_program(program)
