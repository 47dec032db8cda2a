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
}
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
              escape("The config file, looked up in the current directory (or [tool.qctl] in pyproject.toml)."),
              *exit_status_section(), ".SH SEE ALSO", see_also(name for name in commands)]
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
            lines += [".TP", f"\\fI{argument.name.upper()}\\fR", escape(argument.help or "")]
    for panel, members in options_by_panel(options).items():
        lines += [f".SH {escape(panel.upper())}", *option_items(members)]
    lines += exit_status_section(worker=name in WORKER_COMMANDS)
    lines += [".SH SEE ALSO", see_also([], root=True)]
    return "\n".join(lines) + "\n"


def argument_usage(argument: Any) -> str:
    text = f"\\fI{argument.name.upper()}\\fR" + ("..." if argument.nargs == -1 else "")
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
    bare = getattr(option, "bare_type", None)
    kind = bare() if callable(bare) else ""
    return METAVARS.get(str(kind), "VALUE")


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


def see_also(commands: Iterable[str], root: bool = False) -> str:
    names = ["qctl"] if root else [page_name(name) for name in commands]
    return ",\n".join(f"\\fB{escape(name)}\\fR({SECTION})" for name in names) + (",\n\\fBsupervisord\\fR(1)" if not root else "")
