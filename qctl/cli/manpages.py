"""Man pages generated from the CLI itself: `qctl.1` and one `qctl-<command>.1` per command.

Plain roff (the `man` macros), built by walking the Typer app's command tree, so
the pages say exactly what `--help` says. `scripts/generate_man.py` writes them
into `man/`; a test regenerates them and fails when `man/` is out of date. No
dates and no paths of the machine that generated them go into the pages.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qctl.__about__ import __version__

SECTION = "1"
WORKER_COMMANDS = ("work", "listen")
ENVIRONMENT = {
    "QCTL_CONFIG": "Config file to use when --config is not given.",
    "QCTL_CONNECTION": "Name of the default connection.",
    "QCTL_FAILED_DRIVER": "Failed-job store driver: database or null.",
    "QCTL_KEY": "App key that signs (and encrypts) payloads.",
    "QCTL_HEARTBEAT_SECONDS": "Seconds between worker heartbeats (default 3); a record expires after three missed beats.",
    "QCTL_RUNTIME_DIR": "Folder for the hard-timeout witness files workers keep (default: a per-user folder under the temporary directory).",
}
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "": [("Run a worker on the default connection", "qctl work"),
         ("List failed jobs, then retry them all", "qctl failed && qctl retry all"),
         ("Show every command", "qctl --help")],
    "work": [("Work the high queue before default, with up to 3 tries per job", "qctl work --queue high,default --tries 3"),
             ("Drain the queue and exit (cron, CI)", "qctl work --stop-when-empty"),
             ("Log one JSON object per line, every job", "qctl work -v --log-format json")],
    "listen": [("A worker that restarts when the code changes (development)", "qctl listen --queue default")],
    "supervisor:config": [("Eight workers under supervisord", "qctl supervisor:config --numprocs 8 --output /etc/supervisor/conf.d/qctl.conf")],
    "supervise": [("A pool of four workers in the foreground", "qctl supervise --numprocs 4")],
    "failed": [("The newest failed jobs of one queue, last two hours", "qctl failed --queue mail --since 2h"),
               ("One failed job whole, with its traceback and payload", "qctl failed 5f0c…")],
    "retry": [("Retry every failed job", "qctl retry all"), ("Retry rows 1 to 5", "qctl retry --range 1-5")],
    "forget": [("Delete one failed job", "qctl forget 5f0c…")],
    "flush": [("Delete failed jobs older than a day", "qctl flush --hours 24")],
    "prune-failed": [("Cron: keep a week of failed jobs", "0 3 * * * qctl prune-failed --hours 168")],
    "batches": [("Batches still running", "qctl batches --unfinished")],
    "retry-batch": [("Retry a batch's failed jobs", "qctl retry-batch 9b1e…")],
    "prune-batches": [("Cron: drop finished batches after a day", "0 4 * * * qctl prune-batches --hours 24")],
    "clear": [("Delete every job of a queue, without asking", "qctl clear redis --queue emails --force")],
    "restart": [("After a deploy: every worker exits once its job is done", "qctl restart")],
    "down": [("Maintenance: workers stop taking jobs", "qctl down")],
    "up": [("End maintenance", "qctl up")],
    "workers": [("Live workers as JSON", "qctl workers --json")],
    "top": [("Watch every queue, worker, failure and batch; q quits", "qctl top"),
            ("One frame of the redis connection, for a script", "qctl top redis --once")],
    "metrics": [("What ran in the last quarter hour", "qctl metrics --since 15m"),
                ("Prometheus text, for a node exporter's textfile collector", "qctl metrics --prometheus > qctl.prom")],
    "serve-metrics": [("A /metrics endpoint for Prometheus on every interface",
                       "qctl serve-metrics --host 0.0.0.0 --port 9808")],
    "migrate": [("Create the tables the config needs", "qctl migrate")],
    "make:job": [("Write jobs/send_report.py", "qctl make:job SendReport")],
    "key:generate": [("A new app key for qctl.toml", "qctl key:generate")],
}
"""EXAMPLES sections of the man pages ("" is qctl(1))."""

SIGNALS = [("SIGTERM, SIGINT, SIGQUIT", "Finish the job in hand, then exit 0 (an idle worker exits at once)."),
           ("SIGUSR2", "Pause: take no more jobs until SIGCONT."), ("SIGCONT", "Resume taking jobs.")]

METAVARS = {"int": "N", "float": "N", "str": "TEXT", "Path": "PATH", "list[Path]": "PATH"}


def page_name(command: str) -> str:
    """`supervisor:config` → `qctl-supervisor-config` (no colons in file names)."""
    return "qctl-" + command.replace(":", "-")


def escape(text: str) -> str:
    """Roff-safe running text: backslashes, hyphens (so options copy and paste), non-ASCII, leading dots."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if c.isascii() else f"\\[u{ord(c):04X}]" for c in text)
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def paragraphs(help_text: str | None) -> list[str]:
    text = inspect.cleandoc(help_text or "")
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


def summary(help_text: str | None) -> str:
    found = paragraphs(help_text)
    return found[0] if found else ""


def all_pages(root: Any) -> dict[str, str]:
    """File name → page text for the root command and every visible subcommand."""
    commands = {name: command for name, command in root.commands.items() if not command.hidden}
    pages = {f"qctl.{SECTION}": root_page(root, commands)}
    for name, command in commands.items():
        pages[f"{page_name(name)}.{SECTION}"] = command_page(name, command)
    return pages


def write_pages(root: Any, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in all_pages(root).items():
        target = directory / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def header(title: str, description: str) -> list[str]:
    return [
        f'.TH "{title.upper()}" "{SECTION}" "" "qctl {__version__}" "qctl manual"',
        ".SH NAME",
        f"{escape(title)} \\- {escape(description)}",
    ]


def root_page(root: Any, commands: dict[str, Any]) -> str:
    lines = header("qctl", summary(root.help))
    lines += [".SH SYNOPSIS", ".B qctl", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...", ".SH DESCRIPTION"]
    lines += [escape(p) + "\n.PP" for p in paragraphs(root.help)[1:]]
    lines += ["Each command has its own page, \\fBqctl\\-\\fR\\fIcommand\\fR(1), and takes \\fB\\-\\-help\\fR;",
              "listing commands take \\fB\\-\\-json\\fR.",
              ".SH GLOBAL OPTIONS", *option_items(root.params)]
    for panel, members in by_panel(commands).items():
        lines.append(f".SH COMMANDS: {escape(panel.upper())}")
        for name, command in members:
            lines += [".TP", f"\\fB{escape(name)}\\fR (see \\fB{escape(page_name(name))}\\fR({SECTION}))",
                      escape(summary(command.help))]
    lines += [".SH ENVIRONMENT"]
    for variable, meaning in ENVIRONMENT.items():
        lines += [".TP", f"\\fB{variable}\\fR", escape(meaning)]
    lines += [".SH FILES", ".TP", "\\fIqctl.toml\\fR",
              escape("The config file (or [tool.qctl] in pyproject.toml), looked up in the current directory and "
                     "each parent up to the filesystem root or a folder holding .git."),
              *exit_status_section(), *examples_section(""), ".SH SEE ALSO", see_also(name for name in commands)]
    return "\n".join(lines) + "\n"


def by_panel(commands: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    panels: dict[str, list[tuple[str, Any]]] = {}
    for name, command in commands.items():
        panels.setdefault(getattr(command, "rich_help_panel", None) or "Commands", []).append((name, command))
    return panels


def command_page(name: str, command: Any) -> str:
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    lines = header(page_name(name), summary(command.help))
    usage = " ".join(argument_usage(a) for a in arguments)
    lines += [".SH SYNOPSIS", f".B qctl {escape(name)}", f"[\\fIOPTIONS\\fR] {usage}".rstrip(), ".SH DESCRIPTION"]
    lines += [escape(p) + "\n.PP" for p in paragraphs(command.help)]
    lines[-1] = lines[-1].removesuffix("\n.PP")
    if arguments:
        lines.append(".SH ARGUMENTS")
        for argument in arguments:
            lines += [".TP", f"\\fI{escape(metavar(argument))}\\fR", escape(argument.help or "")]
    for panel, members in options_by_panel(options).items():
        lines += [f".SH {escape(panel.upper())}", *option_items(members)]
    if name in WORKER_COMMANDS:
        lines += [".SH SIGNALS"]
        for signals, meaning in SIGNALS:
            lines += [".TP", f"\\fB{escape(signals)}\\fR", escape(meaning)]
    lines += exit_status_section(worker=name in WORKER_COMMANDS)
    lines += examples_section(name)
    lines += [".SH SEE ALSO", see_also([], root=True)]
    return "\n".join(lines) + "\n"


def argument_usage(argument: Any) -> str:
    from qctl.cli.metavars import placeholder

    text = f"\\fI{escape(placeholder(argument))}\\fR"
    return text if argument.required else f"[{text}]"


def options_by_panel(options: list[Any]) -> dict[str, list[Any]]:
    panels: dict[str, list[Any]] = {"Options": []}
    for option in options:
        panels.setdefault(getattr(option, "rich_help_panel", None) or "Options", []).append(option)
    return {panel: members for panel, members in panels.items() if members}


def option_items(options: Iterable[Any]) -> list[str]:
    lines: list[str] = []
    for option in options:
        if option.hidden or option.param_type_name != "option":
            continue
        flags = ", ".join(f"\\fB{escape(flag)}\\fR" for flag in sorted(option.opts, key=len, reverse=True))
        if not option.is_flag:
            flags += f" \\fI{metavar(option)}\\fR"
        lines += [".TP", flags, escape(option.help or "") + default_note(option)]
    return lines


def metavar(option: Any) -> str:
    """The placeholder --help shows too (qctl.cli.metavars)."""
    from qctl.cli.metavars import placeholder

    return placeholder(option) or "VALUE"


def default_note(option: Any) -> str:
    default = option.default
    if option.is_flag or default is None or default == "" or not getattr(option, "show_default", True):
        return ""
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    return escape(f" [default: {shown}]")


def exit_status_section(worker: bool = False) -> list[str]:
    from qctl.worker.stop import EXIT_CODES

    lines = [".SH EXIT STATUS", ".TP", "0", "Success.", ".TP", "1", "Failure (a qctl error, reported in one line).",
             ".TP", "2", "Usage or configuration error."]
    if not worker:
        return lines
    reasons: dict[int, list[str]] = {}
    for reason, status in EXIT_CODES.items():
        reasons.setdefault(status, []).append(reason.value)
    lines += [".PP", "Why a worker stopped, by status:"]
    for status, why in sorted(reasons.items()):
        lines += [".TP", str(status), escape(", ".join(why) + ".")]
    lines += [".PP", escape("A job that outruns its timeout ends the worker with status 1 (or SIGKILL) "
                            "so its process manager starts a fresh one.")]
    return lines


def examples_section(name: str) -> list[str]:
    lines: list[str] = []
    for description, command in EXAMPLES.get(name, []):
        lines += [".PP", escape(description) + ":", ".PP", ".RS", f"\\fB{escape(command)}\\fR", ".RE"]
    return [".SH EXAMPLES", *lines] if lines else []


def see_also(commands: Iterable[str], root: bool = False) -> str:
    names = ["qctl"] if root else [page_name(name) for name in commands]
    return ",\n".join(f"\\fB{escape(name)}\\fR({SECTION})" for name in names) + (",\n\\fBsupervisord\\fR(1)" if not root else "")
