"""The core/Dagster split holds at run time too, not only in ruff's banned-api rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_imports_without_dagster() -> None:
    modules = sorted(p.stem for p in (ROOT / "mungmo_pipelines" / "core").glob("*.py") if p.stem != "__init__")
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('mungmo_pipelines.core.' + name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True)
