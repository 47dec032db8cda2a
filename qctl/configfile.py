"""Writing one value into the config file that was found: `key = "…"` for `key:generate --write`.

The file is edited as text, one line added or replaced, so comments, order and formatting stay
byte for byte; the result is parsed again and must equal the original plus the key, or nothing
is written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qctl.config import BUILT_IN, Config
from qctl.errors import QctlError

TOOL_SUFFIX = " [tool.qctl]"
_HEADER = re.compile(r"^\s*\[")
_TOOL_QCTL = re.compile(r"^\s*\[\s*tool\s*\.\s*qctl\s*\]\s*(#.*)?$")
_KEY_LINE = re.compile(r"^\s*key\s*=")


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    in_pyproject: bool
    """The settings live in [tool.qctl] of a pyproject.toml."""


def found_file(config: Config) -> ConfigFile | None:
    """The file `config` was read from, or None for built-in defaults."""
    if config.source == BUILT_IN or config.directory is None:
        return None
    if config.source.endswith(TOOL_SUFFIX):
        return ConfigFile(config.directory / "pyproject.toml", True)
    return ConfigFile(config.directory / Path(config.source).name, False)


def set_key(file: ConfigFile, key: str, force: bool) -> None:
    """Set `key = "<key>"` in the file; QctlError (nothing written) when a key is set and not `force`."""
    text = file.path.read_bytes().decode("utf-8")
    before = tomllib.loads(text)
    lines = text.splitlines(keepends=True)
    start, end = _section(lines, file.in_pyproject)
    existing = next((i for i in range(start, end) if _KEY_LINE.match(lines[i])), None)
    if existing is not None and not force:
        raise QctlError(f"{file.path.name}: a key is already set; --force replaces it (jobs queued and "
                        "failed jobs stored under the old key then fail their signature check)")
    newline = "\r\n" if "\r\n" in text else "\n"
    entry = f'key = "{key}"{newline}'
    if existing is not None:
        lines[existing] = entry
    elif file.in_pyproject and start == 0 and end == 0:  # no [tool.qctl] header (only dotted keys or sub-tables)
        gap = "" if not lines or lines[-1].endswith(("\n", "\r")) else newline
        lines.append(f"{gap}{newline}[tool.qctl]{newline}{entry}")
    else:
        at = start if file.in_pyproject else _after_last_setting(lines, end)
        if at > 0 and not lines[at - 1].endswith(("\n", "\r")):
            lines[at - 1] += newline
        lines.insert(at, entry)
    written = "".join(lines)
    _check_only_the_key_changed(before, written, key, file)
    _replace(file.path, written)


def _section(lines: list[str], in_pyproject: bool) -> tuple[int, int]:
    """[first, end) line numbers of the top-level keys (qctl.toml) or the [tool.qctl] table; (0, 0) for
    a pyproject.toml without a [tool.qctl] header."""
    if not in_pyproject:
        end = next((i for i, line in enumerate(lines) if _HEADER.match(line)), len(lines))
        return 0, end
    header = next((i for i, line in enumerate(lines) if _TOOL_QCTL.match(line)), None)
    if header is None:
        return 0, 0
    end = next((i for i in range(header + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    return header + 1, end


def _after_last_setting(lines: list[str], end: int) -> int:
    """Just below the last top-level line that is neither blank nor a comment (0 when there is none)."""
    for i in range(end - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            return i + 1
    return 0


def _check_only_the_key_changed(before: dict[str, Any], written: str, key: str, file: ConfigFile) -> None:
    try:
        after = tomllib.loads(written)
    except tomllib.TOMLDecodeError:
        after = None
    expected = _with_key(before, key, file.in_pyproject)
    if after != expected:
        raise QctlError(f"{file.path.name}: cannot place the key without disturbing the file; add "
                        f'key = "…" by hand (qctl key:generate prints one)')


def _with_key(settings: dict[str, Any], key: str, in_pyproject: bool) -> dict[str, Any]:
    if not in_pyproject:
        return {**settings, "key": key}
    tool = dict(settings.get("tool", {}))
    tool["qctl"] = {**tool.get("qctl", {}), "key": key}
    return {**settings, "tool": tool}


def _replace(path: Path, text: str) -> None:
    """Write through a temporary file beside it, so a crash leaves the old file or the new one."""
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        out.write(text.encode("utf-8"))
        temporary = Path(out.name)
    try:
        shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
