"""Leaderboard rows (``leaderboard.csv``): how a row's score is read."""
from __future__ import annotations

import pandas as pd


def rank_score(row: pd.Series) -> float:
    """A leaderboard row's score as ranked: its re-ranked mean where it has one, else the search's."""
    value = row.get("rerank_objective")
    return float(value if value is not None and pd.notna(value) else row["objective"])
