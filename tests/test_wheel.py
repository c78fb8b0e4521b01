"""A plain (not editable) install works outside the clone: the wheel ships conf/ and search_spaces/.

The wheel is built with ``pip wheel . --no-deps`` from a copy of the sources and installed with
``--no-deps`` into a fresh virtual environment. The dependencies come from this test's own
environment through a ``.pth`` path line, so only automl itself comes from the wheel. Then the
real ``automl fit`` and ``automl serve`` run from an empty directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import requests

from conftest import free_port, make_binary_frame
from test_serving import wait_ping

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("automl", "conf", "search_spaces", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _copy_sources(dest: Path) -> Path:
    """The files a wheel is built from, without build/ or egg-info left by earlier builds."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.py[co]", "*.egg-info", "_conf", "_search_spaces")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def _build_wheel(tmp: Path) -> Path:
    src, dist = _copy_sources(tmp / "src"), tmp / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(dist), "-q"],
                          cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("automl-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv holding only the automl wheel; the test environment's packages via a .pth line."""
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PYTHONNOUSERSITE": "1"}


def _serve_and_predict(automl: Path, run_dir: Path, cwd: Path, rows: str) -> dict:
    port = free_port()
    proc = subprocess.Popen([str(automl), "serve", f"run_dir={run_dir}", f"port={port}"], cwd=cwd, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ping(url, proc)
        res = requests.post(f"{url}/invocations", data=rows, headers={"Content-Type": "text/csv"}, timeout=30)
        assert res.status_code == 200, res.text
        return res.json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_wheel_installed_in_a_fresh_venv_fits_and_serves_from_an_empty_directory(tmp_path):
    wheel = _build_wheel(tmp_path)
    env_dir = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "empty"
    work.mkdir()
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import automl; print(automl.__file__)"],
                           cwd=work, env=_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), f"automl came from {where}, not the wheel"
    frame = make_binary_frame(120)
    frame.to_csv(tmp_path / "train.csv", index=False)
    automl = env_dir / "bin" / "automl"
    fit = subprocess.run([str(automl), "fit", f"data.path={tmp_path / 'train.csv'}", "data.target=y",
                          "budget.max_trials=3", "budget.time_limit_s=20", "output_dir=run"],
                         cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (work / "run" / "summary.json").exists()
    rows = frame[["x1", "x2", "color"]].head(3).to_csv(index=False, header=False)
    answer = _serve_and_predict(automl, work / "run", work, rows)
    assert len(answer["predictions"]) == 3
