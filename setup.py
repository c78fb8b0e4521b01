"""Build hook: a wheel carries the top-level ``conf/`` and ``search_spaces/`` folders as package data.

The folders stay at the top of the repository, where they are edited; ``build_py`` copies them
into the built package as ``automl/_conf`` and ``automl/_search_spaces``, where
``automl.resources.project_dir`` looks first. Everything else about the package is in pyproject.toml.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_TREES = {"conf": "_conf", "search_spaces": "_search_spaces"}  # top-level folder -> automl/<name>


class BuildPyWithData(build_py):
    """``build_py`` that also copies the YAML data trees into the built ``automl`` package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the folders in the clone
        for source, name in DATA_TREES.items():
            target = Path(self.build_lib) / "automl" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


setup(cmdclass={"build_py": BuildPyWithData})
