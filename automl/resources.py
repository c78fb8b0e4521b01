"""Where automl's shipped data lives: the Hydra configs (``conf``) and the search spaces.

Both are edited as the top-level ``conf/`` and ``search_spaces/`` folders of the repository. A
built wheel carries copies inside the package as ``automl/_conf`` and ``automl/_search_spaces``
(``setup.py`` copies them at build time); a clone or an editable install reads the folders
themselves. Users point at their own files with ``search_spaces_dir=`` and ``candidates_dir=``.
"""
from __future__ import annotations

from pathlib import Path

from automl.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_FOLDERS = ("conf", "search_spaces")


def project_dir(name: str) -> Path:
    """The folder ``name`` (``conf`` or ``search_spaces``): the installed copy first, else the clone's."""
    for candidate in (PACKAGE_DIR / f"_{name}", PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"cannot find automl's '{name}' folder in {PACKAGE_DIR} or {PACKAGE_DIR.parent}; "
                      "reinstall automl (pip install automl, or pip install -e . in a clone)")
