"""The one check that a frame holds the columns a model or a baseline needs."""
from __future__ import annotations

from typing import Hashable, Iterable, List

from automl.errors import DataError

ADD_THEM = "add them (extra columns are ignored)"


def missing_columns(required: Iterable[Hashable], columns: Iterable[Hashable]) -> List[Hashable]:
    """The names of ``required`` that are not in ``columns``, in ``required``'s order."""
    present = set(columns)
    return [c for c in required if c not in present]


def require_columns(required: Iterable[Hashable], columns: Iterable[Hashable], fix: str = ADD_THEM) -> None:
    """Refuse a frame without every ``required`` column: one line naming them and ``fix``."""
    missing = missing_columns(required, columns)
    if missing:
        raise DataError(f"input is missing required column(s): {', '.join(map(str, missing))}; {fix}")
