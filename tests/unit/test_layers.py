"""Dependencies point down (STYLE.md): a module never imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "qctl"

LAYERS = [
    {"cli"},
    {"facades", "testing", "supervisor", "scaffold", "configfile", "about", "demo", "monitoring"},
    {"runtime"},
    {"worker"},
    {"bus", "middleware"},
    {"connections"},
    {"drivers", "failed", "cache"},
    {"db"},
    {"jobs", "payload", "events", "transactions"},
    {"config", "errors", "clock", "crashpoints", "limits", "urls", "__about__"},
]
# Named exceptions: Job.dispatch()/dispatch_sync() reach the runtime from inside the method, and
# the Job's test helpers (with_fake_queue_interactions, assert_released…) reach qctl.testing.
ALLOWED_UPWARD = {("jobs.job", "runtime"), ("jobs.job", "testing")}


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


def test_nothing_in_the_library_imports_qctl_testing_at_import_time() -> None:
    """qctl.testing is reached only from inside a function (a fake asked for by a test)."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "testing":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: imports inside functions run on use
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(n == "qctl.testing" or n.startswith("qctl.testing.") for n in names):
                wrong.append(str(relative))
    assert not wrong, "imports qctl.testing at module level:\n" + "\n".join(wrong)


def test_importing_qctl_does_not_import_qctl_testing() -> None:
    import subprocess
    import sys

    code = "import sys, qctl; qctl.Job; print(any(m.startswith('qctl.testing') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
