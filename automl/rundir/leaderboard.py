"""Leaderboard rows (``leaderboard.csv``): how a row's score is read, and the file itself."""
from __future__ import annotations

from typing import Any, Dict, Optional

import pandas as pd

from automl import artifacts as art
from automl.rundir.layout import LEADERBOARD_FILE


def rank_score(row: pd.Series) -> float:
    """A leaderboard row's score as ranked: its re-ranked mean where it has one, else the search's."""
    value = row.get("rerank_objective")
    return float(value if value is not None and pd.notna(value) else row["objective"])


def write_leaderboard(run_dir: str, lb: pd.DataFrame, storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Write leaderboard.csv (atomically: a reader never sees half a file)."""
    art.write_text(art.join(run_dir, LEADERBOARD_FILE), lb.to_csv(index=False), storage_options or {})
