"""Column checks: that a frame holds the columns a model or a baseline needs, and the user's
choice of feature columns (``data.features``, ``data.exclude``, ``data.types``) against a table."""
from __future__ import annotations

import difflib
from typing import Hashable, Iterable, List, Mapping, Optional, Sequence

from automl.data.types import TYPE_CHOICES
from automl.errors import ConfigError, DataError

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


def check_feature_keys(features: Optional[Sequence[str]], exclude: Sequence[str], types: Mapping[str, str]) -> None:
    """What can be checked of ``data.features``/``data.exclude``/``data.types`` without the table."""
    if features is not None and exclude:
        raise ConfigError("data.features and data.exclude are both set; give one: data.features lists the feature "
                          "columns, data.exclude the columns left out")
    if features is not None and not list(features):
        raise ConfigError("data.features=[] names no column; list at least one, or data.features=null for all")
    for col, kind in types.items():
        if kind not in TYPE_CHOICES:
            near = difflib.get_close_matches(str(kind), TYPE_CHOICES, n=1, cutoff=0.5)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"data.types.{col}='{kind}' is not a column type{hint}; valid types: "
                              f"{', '.join(TYPE_CHOICES)}")


def _no_such_column(key: str, name: str, columns: Sequence[str], dropped: Sequence[str]) -> DataError:
    if name in dropped:
        return DataError(f"{key} names '{name}', which data.drop removes; take it out of one of them")
    lowered = {str(c).lower(): str(c) for c in columns}
    near = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
    hint = f"did you mean '{lowered[near[0]]}'?" if near else "no column has a similar name"
    shown = ", ".join(map(str, list(columns)[:20])) + (" …" if len(columns) > 20 else "")
    return DataError(f"{key} names '{name}', which is not a column of the table ({hint}); the columns are: {shown}")


def check_chosen_columns(columns: Sequence[str], target: str, features: Optional[Sequence[str]],
                         exclude: Sequence[str], types: Mapping[str, str], dropped: Sequence[str] = (),
                         reserved: Optional[Mapping[str, str]] = None) -> None:
    """Every column ``data.features``, ``data.exclude`` and ``data.types`` name is in the table
    (else the closest name is suggested); none of the features or typed columns is the target or
    a ``reserved`` column (weights, groups: ``{column: its key}``), which are never features."""
    reserved = {target: "data.target", **(reserved or {})}
    present = set(map(str, columns))
    for key, names in (("data.features", features or []), ("data.exclude", exclude), ("data.types", list(types))):
        for name in names:
            if str(name) not in present:
                raise _no_such_column(key, str(name), list(columns), dropped)
            if key != "data.exclude" and str(name) in reserved:
                raise DataError(f"{key} names '{name}', which is {reserved[str(name)]} and never a feature; "
                                f"take it out of {key}")


def choose_features(column_types: Mapping[str, str], usable: Sequence[str], features: Optional[Sequence[str]],
                    exclude: Sequence[str], types: Mapping[str, str]) -> List[str]:
    """The feature columns, in table order: ``features`` when given, else the ``usable`` ones
    (inferred feature types) less ``exclude``. A named feature inferred as an ID or constant
    column is an error whose fix is ``data.types``."""
    if features is None:
        drop = set(map(str, exclude))
        chosen = [c for c in usable if c not in drop]
        if not chosen:
            raise DataError(f"data.exclude={list(exclude)} leaves no feature column; exclude fewer columns")
        return chosen
    wanted = set(map(str, features))
    for col in wanted:
        kind = column_types.get(col)
        if col not in usable and col not in types:
            raise DataError(f"data.features names '{col}', which is inferred as '{kind}' (not a feature); "
                            f"to use it anyway give its type, e.g. data.types={{{col}: categorical}}, "
                            "or take it out of data.features")
    return [c for c in column_types if c in wanted]
