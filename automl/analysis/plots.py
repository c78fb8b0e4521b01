"""Figures of the data analysis (matplotlib), shared by the exploration notebook and the report."""
from __future__ import annotations

import numpy as np
import pandas as pd


def pyplot():
    """pyplot, on the non-interactive Agg backend unless a notebook kernel chose one already."""
    import os
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_target(y: pd.Series, problem_type: str):
    """Class frequencies (classification) or a histogram of the target (regression)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    y = y.dropna()
    if problem_type == "regression":
        v = pd.to_numeric(y, errors="coerce").dropna()
        ax.hist(v, bins=40, color="#4c72b0")
        ax.set_xlabel(str(y.name))
        ax.set_ylabel("rows")
        ax.set_title(f"target distribution (skew {v.skew():.2f})")
    else:
        counts = y.astype(str).value_counts().head(30)
        ax.bar(counts.index, counts.values, color="#4c72b0")
        ax.set_ylabel("rows")
        ax.set_title("class frequencies")
        ax.tick_params(axis="x", rotation=45 if len(counts) > 6 else 0)
    return fig


def plot_power(power: pd.Series, k: int = 20):
    """Horizontal bars of the ``k`` most predictive features."""
    plt = pyplot()
    top = power.head(k)[::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.28 * len(top) + 0.8)))
    ax.barh(list(map(str, top.index)), top.values, color="#55a868")
    ax.set_xlim(0, 1)
    ax.set_xlabel("prediction power (0 = chance, 1 = perfect)")
    ax.set_title(f"top {len(top)} features on their own")
    return fig


def plot_correlations(corr: pd.DataFrame):
    """A heatmap of a correlation matrix."""
    plt = pyplot()
    n = max(1, len(corr))
    fig, ax = plt.subplots(figsize=(min(9, 1.4 + 0.55 * n), min(8, 1.0 + 0.5 * n)))
    if corr.empty:
        ax.text(0.5, 0.5, "fewer than two numeric features", ha="center", va="center")
        ax.set_axis_off()
        return fig
    im = ax.imshow(corr.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), list(map(str, corr.columns)), rotation=60, ha="right")
    ax.set_yticks(range(n), list(map(str, corr.index)))
    for i in range(n):
        for j in range(n):
            v = corr.iat[i, j]
            if np.isfinite(v) and n <= 12:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman correlation")
    ax.set_title("correlations among the top numeric features")
    fig.tight_layout()
    return fig
