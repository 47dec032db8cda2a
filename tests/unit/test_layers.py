"""Dependencies point down (STYLE.md): a module never imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "qctl"

LAYERS = [
    {"cli"},
    {"facades", "testing", "supervisor", "scaffold", "demo"},
    {"runtime"},
    {"worker"},
    {"bus", "middleware"},
    {"connections"},
    {"drivers", "failed", "cache"},
    {"db"},
    {"jobs", "payload", "events"},
    {"config", "errors", "clock", "crashpoints", "__about__"},
]
# Named exceptions: Job.dispatch()/dispatch_sync() reach the runtime from inside the method.
ALLOWED_UPWARD = {("jobs.job", "runtime")}


def layer_of(top: str) -> int:
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"qctl.{top} is in no layer: add it to LAYERS in {__file__}")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "qctl" or name.startswith("qctl.")}


def test_no_module_imports_from_a_layer_above() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = relative.parts
        if parts[-1] in ("__init__", "__main__") and len(parts) == 1:
            continue  # the package's public re-exports and `python -m qctl`
        here = ".".join(parts)
        here_layer = layer_of(parts[0])
        for module in imported_modules(path):
            target = module.split(".")
            if len(target) < 2:
                continue
            if layer_of(target[1]) < here_layer and (here, target[1]) not in ALLOWED_UPWARD:
                wrong.append(f"qctl.{here} imports {module}")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)
