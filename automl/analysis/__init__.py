"""Data analysis for the exploration notebook and the report: profile, prediction power, insights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import pandas as pd

from automl.analysis.insights import Insight, disguised_missing, find_insights
from automl.analysis.power import prediction_power, top_correlations
from automl.analysis.profile import TargetAnalysis, column_table, dataset_summary, resolve_types, target_analysis

__all__ = ["Analysis", "analyse", "column_table", "dataset_summary", "disguised_missing", "find_insights",
           "Insight", "prediction_power", "resolve_types", "target_analysis", "TargetAnalysis", "top_correlations"]


@dataclass
class Analysis:
    """Everything the exploration notebook shows, computed once."""

    summary: pd.DataFrame
    target: TargetAnalysis
    columns: pd.DataFrame
    power: pd.Series
    correlations: pd.DataFrame
    insights: pd.DataFrame


def analyse(df: pd.DataFrame, target: str, problem_type: str, reason: str = "",
            column_types: Optional[Dict[str, str]] = None, seed: int = 0) -> Analysis:
    """Profile the training rows (target included)."""
    types = resolve_types(df, target, column_types)
    power = prediction_power(df, target, problem_type, types, seed=seed)
    return Analysis(
        summary=dataset_summary(df, target, problem_type, reason, types),
        target=target_analysis(df[target], problem_type),
        columns=column_table(df.drop(columns=[target]), types),
        power=power,
        correlations=top_correlations(df, power, types, seed=seed),
        insights=find_insights(df, target, problem_type, types, power),
    )
