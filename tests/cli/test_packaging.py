"""The wheel carries the package and templates/, so scaffolding works from an installed qctl."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_templates_and_make_job_works_from_it(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("qctl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "qctl/templates/job.py.tmpl" in names
    assert "qctl/py.typed" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    work = tmp_path / "project"
    work.mkdir()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import qctl.scaffold as s; assert s.templates_dir() == s.PACKAGE_DIR / 'templates', s.templates_dir()\n"
        "from qctl.cli import main; main(['make:job', 'SendMail'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(unpacked)], cwd=work, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "class SendMail(Job)" in (work / "jobs" / "send_mail.py").read_text()
