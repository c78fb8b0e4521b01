"""The report's figures (matplotlib), each returned as an inline base64 PNG ``<img>`` tag."""
from __future__ import annotations

import base64
import html
import io
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from automl.analysis.plots import pyplot

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
           "#ccb974", "#64b5cd"]
MAX_ANNOTATED_CLASSES = 10  # the confusion matrix writes zeros too up to this many classes


def img(fig, alt: str) -> str:
    """Render ``fig`` to a PNG ``<img class="plot">`` tag and close it."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", pil_kwargs={"compress_level": 3})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _colors(names: Sequence[str]) -> Dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def useful_range(values: np.ndarray, greater_is_better: bool) -> tuple[float, float]:
    """Score-axis limits that keep the bulk of the trials and the best in view: the bad side stops
    at the quartile's Tukey fence (3 interquartile ranges) when outliers lie beyond it."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    q1, q3 = np.percentile(v, [25, 75])
    if len(v) >= 4 and q3 > q1:
        if greater_is_better:
            lo = max(lo, float(q1 - 3 * (q3 - q1)))
        else:
            hi = min(hi, float(q3 + 3 * (q3 - q1)))
    pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi) * 0.01, 1e-3)
    return lo - pad, hi + pad


def _clipped(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(values pinned into [lo, hi], which were out of it)."""
    v = np.asarray(values, dtype=float)
    return np.clip(v, lo, hi), (v < lo) | (v > hi)


def _note_clipped(ax, n: int) -> None:
    if n:
        ax.text(0.99, 0.02, f"{n} trial(s) outside the range, drawn at its edge as \u25bd", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#555")


def objective_by_trial(lb: pd.DataFrame, metric: str, greater_is_better: bool):
    """Each completed trial's validation score in the order trials ran, and the best so far; the
    score axis keeps to the useful range (outliers drawn at its edge)."""
    plt = pyplot()
    done = lb[lb["status"] == "completed"].sort_values("trial_number")
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    lo, hi = useful_range(done["objective"].to_numpy(dtype=float), greater_is_better)
    colors = _colors(done["candidate"].astype(str))
    n_out = 0
    for cand, part in done.groupby(done["candidate"].astype(str)):
        y, out = _clipped(part["objective"].to_numpy(dtype=float), lo, hi)
        x = part["trial_number"].to_numpy()
        ax.scatter(x[~out], y[~out], s=22, color=colors[cand], label=cand)
        ax.scatter(x[out], y[out], s=30, marker="v", facecolors="none", edgecolors=colors[cand])
        n_out += int(out.sum())
    best = done["objective"].cummax() if greater_is_better else done["objective"].cummin()
    ax.step(done["trial_number"], best, where="post", color="black", lw=1.2, label="best so far")
    ax.set_ylim(lo, hi)
    _note_clipped(ax, n_out)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("objective against trial number")
    ax.legend(fontsize=7, loc="best")
    return fig


def scores_by_candidate(lb: pd.DataFrame, metric: str, greater_is_better: bool = True):
    """The spread of validation scores of each candidate's trials (score axis: the useful range)."""
    plt = pyplot()
    done = lb[lb["status"] == "completed"]
    names = sorted(done["candidate"].astype(str).unique())
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.4))
    data = [done.loc[done["candidate"].astype(str) == n, "objective"].to_numpy(dtype=float) for n in names]
    lo, hi = useful_range(done["objective"].to_numpy(dtype=float), greater_is_better)
    ax.boxplot(data, vert=False, widths=0.5)
    colors = _colors(names)
    rng = np.random.default_rng(0)
    n_out = 0
    for i, (n, d) in enumerate(zip(names, data), start=1):
        x, out = _clipped(d, lo, hi)
        jitter = i + rng.uniform(-0.12, 0.12, len(d))
        ax.scatter(x[~out], jitter[~out], s=14, color=colors[n], zorder=3)
        ax.scatter(x[out], jitter[out], s=22, marker="v", facecolors="none", edgecolors=colors[n], zorder=3)
        n_out += int(out.sum())
    ax.set_xlim(lo, hi)
    _note_clipped(ax, n_out)
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel(f"validation {metric}")
    ax.set_title("scores by candidate")
    return fig


def pareto_mask(cost: np.ndarray, score: np.ndarray, greater_is_better: bool) -> np.ndarray:
    """Trials no other trial beats on both cost (lower is better) and score."""
    s = score if greater_is_better else -score
    keep = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        better = (cost <= cost[i]) & (s >= s[i]) & ((cost < cost[i]) | (s > s[i]))
        keep[i] = not better.any()
    return keep


def pareto(lb: pd.DataFrame, cost_col: str, cost_label: str, metric: str, greater_is_better: bool,
           chosen: Optional[str] = None, limit: Optional[float] = None):
    """Score against a cost (predict latency, model size), the Pareto front drawn as a line;
    ``limit`` (select.max_latency_ms / max_size_mb, in the cost's unit) as a dashed line, the
    excluded side shaded."""
    plt = pyplot()
    done = lb[(lb["status"] == "completed")].copy()
    done = done[np.isfinite(pd.to_numeric(done[cost_col], errors="coerce")) & (done[cost_col] > 0)]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    if done.empty:
        ax.text(0.5, 0.5, f"no {cost_label} recorded", ha="center", va="center")
        ax.set_axis_off()
        return fig
    cost = done[cost_col].to_numpy(dtype=float)
    score = done["objective"].to_numpy(dtype=float)
    lo, hi = useful_range(score, greater_is_better)
    shown, out = _clipped(score, lo, hi)
    colors = np.array([_colors(done["candidate"].astype(str))[c] for c in done["candidate"].astype(str)])
    ax.scatter(cost[~out], shown[~out], s=20, c=colors[~out], alpha=0.8)
    ax.scatter(cost[out], shown[out], s=30, marker="v", facecolors="none", edgecolors=colors[out])
    front = pareto_mask(cost, score, greater_is_better)
    order = np.argsort(cost[front])
    ax.step(cost[front][order], score[front][order], where="post", color="black", lw=1.2, label="Pareto front")
    ax.scatter(cost[front], score[front], s=46, facecolors="none", edgecolors="black")
    if chosen is not None:
        mask = done["trial_id"].astype(str).to_numpy() == str(chosen)
        if mask.any():
            ax.scatter(cost[mask], score[mask], marker="*", s=160, color="gold", edgecolors="black",
                       zorder=4, label="chosen")
    if limit is not None:
        ax.axvline(limit, color="#c44e52", ls="--", lw=1.2, label=f"bound ({limit:g})")
        ax.axvspan(limit, max(limit, float(cost.max())) * 1.5, color="#c44e52", alpha=0.08)
    cost_axis(ax, cost)
    ax.set_ylim(lo, hi)
    _note_clipped(ax, int(out.sum()))
    ax.set_xlabel(cost_label)
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{metric} against {cost_label.split(' (')[0]}")
    ax.legend(fontsize=7, loc="best")
    return fig


def cost_axis(ax, cost: np.ndarray) -> None:
    """A log axis with labelled ticks at 1, 2 and 5 times powers of ten when the costs span more
    than 10x; a linear axis with a few ticks when they are closer (a log axis would label one or two)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    lo, hi = float(np.min(cost)), float(np.max(cost))
    label = FuncFormatter(lambda v, _: f"{v:g}")
    if hi > 10 * lo:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(label)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(lo / 1.25, hi * 1.25)
    else:
        pad = (hi - lo) * 0.08 or lo * 0.05 or 1.0
        ax.set_xlim(lo - pad, hi + pad)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(label)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)


def reliability(before: Optional[Dict[str, Any]], after: Optional[Dict[str, Any]], method: str):
    """Reliability diagram: accuracy against mean top-class probability per bin, before and after
    calibration, each with its expected calibration error (marker area: the bin's rows). Bins of
    under 0.5% of the rows (their accuracy is noise) are hollow and off the line; the axes run
    from the lowest bin's probability to 1, a lower accuracy drawn at the edge."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    curves = [(before, "uncalibrated", PALETTE[1])]
    if method != "none":
        curves.append((after, method, PALETTE[0]))
    parts = []
    for rec, label, color in curves:
        bins = (rec or {}).get("bins") or []
        if bins:
            conf = np.array([b["confidence"] for b in bins])
            acc = np.array([b["accuracy"] for b in bins])
            count = np.array([b["count"] for b in bins], dtype=float)
            parts.append((conf, acc, count, f"{label} (ECE {rec.get('ece', float('nan')):.3f})", color))
    lo = max(0.0, np.floor(min([1.0] + [float(p[0].min()) for p in parts]) * 10) / 10)
    for conf, acc, count, label, color in parts:
        big = count >= max(5.0, 0.005 * count.sum())
        shown = np.maximum(acc, lo)
        ax.plot(conf[big], shown[big], color=color, lw=1.2, label=label)
        area = 10 + 70 * np.sqrt(count / count.max())
        ax.scatter(conf[big], shown[big], s=area[big], color=color, zorder=3)
        ax.scatter(conf[~big], shown[~big], s=area[~big], facecolors="none", edgecolors=color, zorder=3)
    ax.plot([lo, 1], [lo, 1], ls="--", color="grey", lw=0.8, label="perfectly calibrated")
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("top-class probability (bin mean)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title("calibration (out-of-fold)")
    ax.legend(fontsize=7, loc="best")
    return fig


def confusion(y: np.ndarray, labels: np.ndarray, classes: List[Any]):
    """Confusion matrix of validation predictions (rows: actual, columns: predicted)."""
    from sklearn.metrics import confusion_matrix

    plt = pyplot()
    k = len(classes)
    cm = confusion_matrix(y, labels, labels=np.arange(k))
    size = min(8.0, 2.4 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(cm, cmap="Blues")
    names = [str(c) for c in classes]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0)
    ax.set_yticks(range(k), names)
    # Every cell is a text artist, and drawing text is most of the figure's cost: past
    # MAX_ANNOTATED_CLASSES only the non-zero cells carry their count (30 classes: ~40 texts, not 900).
    cells = ((i, j) for i in range(k) for j in range(k) if k <= MAX_ANNOTATED_CLASSES or cm[i, j])
    for i, j in cells:
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6 if k > 20 else 8 if k > 8 else 10,
                color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("confusion matrix (validation)")
    return fig


def roc(y_pos: np.ndarray, score: np.ndarray):
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fpr, tpr, _ = roc_curve(y_pos, score)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot(fpr, tpr, color=PALETTE[0], label=f"AUC {roc_auc_score(y_pos, score):.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (validation)")
    ax.legend(loc="lower right")
    return fig


def precision_recall(y_pos: np.ndarray, score: np.ndarray):
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = pyplot()
    prec, rec, _ = precision_recall_curve(y_pos, score)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot(rec, prec, color=PALETTE[1], label=f"AP {average_precision_score(y_pos, score):.3f}")
    ax.axhline(float(np.mean(y_pos)), ls="--", color="grey", lw=0.8, label="base rate")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("precision-recall (validation)")
    ax.legend(loc="lower left")
    return fig


def actual_vs_predicted(y: np.ndarray, pred: np.ndarray):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.scatter(y, pred, s=8, alpha=0.5, color=PALETTE[0])
    lo, hi = float(np.nanmin([y.min(), pred.min()])), float(np.nanmax([y.max(), pred.max()]))
    ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("actual against predicted (validation)")
    return fig


def residuals(y: np.ndarray, pred: np.ndarray):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.scatter(pred, y - pred, s=8, alpha=0.5, color=PALETTE[2])
    ax.axhline(0, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual - predicted")
    ax.set_title("residuals (validation)")
    return fig


def importance(imp: pd.DataFrame, metric: str, k: int = 20):
    """Permutation importance: mean drop of the metric when a feature is shuffled, with its spread."""
    plt = pyplot()
    top = imp.head(k)[::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.3 * len(top) + 0.9)))
    ax.barh(top.index.astype(str), top["mean"], xerr=top["std"], color=PALETTE[4])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"drop in {metric} when the feature is shuffled")
    ax.set_title("feature importance (permutation, held-out rows)")
    return fig
