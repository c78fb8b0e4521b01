"""The import contracts in .importlinter hold: no cycles, readers never import the fit flow,
the run-folder package imports no stage. ``lint-imports`` runs as CI runs it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_lint_imports_keeps_every_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_a_forbidden_import_breaks_the_contracts(tmp_path):
    """serving importing the runner (the fit flow) must fail the check, in a copy of the sources."""
    shutil.copytree(ROOT / "automl", tmp_path / "automl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / ".importlinter", tmp_path / ".importlinter")
    codec = tmp_path / "automl" / "serving" / "codec.py"
    codec.write_text(codec.read_text() + "\nfrom automl.runner import fit  # noqa: E402,F401\n")
    done = lint_imports(tmp_path, pythonpath=str(tmp_path))
    assert done.returncode != 0, done.stdout[-4000:]
    assert "automl.serving.codec -> automl.runner" in done.stdout


def test_no_function_is_over_80_lines_and_no_module_takes_another_modules_private_names():
    """Issue 15's size and privacy rules, checked on the code as it is."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "automl"
    long, private = [], []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(root)}:{node.name}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("automl"):
                private += [f"{path.relative_to(root)}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not long, f"functions over 80 lines: {long}"
    assert not private, f"imports of another module's private names: {private}"
