"""The core install (`pip install automl`, no extras) declares what the core code imports unguarded."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_psutil_is_a_core_dependency():
    """automl/search/memory.py and automl/rundir/lock.py import psutil on every fit; Ray 2.60 no
    longer brings it, so `pip install -e . && automl fit` (the README's quick start) failed in a
    fresh virtual environment with "No module named 'psutil'" while the test extra hid it."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in deps}
    assert "psutil" in names
    for module in ("automl/search/memory.py", "automl/rundir/lock.py"):
        assert "import psutil" in (ROOT / module).read_text()
