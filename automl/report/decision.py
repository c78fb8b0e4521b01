"""The report's first section: the decision. The chosen model, its validation and test scores,
and the best trial of each candidate with its single-row latency and size (figures the search
already measured), the Pareto-optimal rows marked."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pandas as pd

from automl.report.context import ENSEMBLE_ID, ReportContext
from automl.report.html import esc, section, table
from automl.rundir.leaderboard import rank_score

PARETO_MARK = "\u2605"  # the best-per-candidate table's mark of a Pareto-optimal row
COSTS = ("latency_ms_single_row", "model_size_bytes")


def pareto_rows(score: np.ndarray, costs: List[np.ndarray], greater_is_better: bool) -> np.ndarray:
    """Rows no other row beats: at least as good on the score and every cost (lower is better),
    strictly better on one. A row with a missing figure is never optimal."""
    s = score if greater_is_better else -score
    known = np.isfinite(s) & np.all([np.isfinite(c) for c in costs], axis=0)
    keep = known.copy()
    for i in np.flatnonzero(known):
        no_worse = known & (s >= s[i]) & np.all([c <= c[i] for c in costs], axis=0)
        better = (s > s[i]) | np.any([c < c[i] for c in costs], axis=0)
        keep[i] = not (no_worse & better).any()
    return keep


def best_per_candidate(lb: pd.DataFrame, greater_is_better: bool) -> pd.DataFrame:
    """One row per candidate (the ensemble counts as one): its best completed trial, ranked by
    the leaderboard's score (re-ranked where the run re-ranked), with ``pareto`` set on the rows
    that no other row beats on score, latency and size together."""
    done = lb[lb["status"] == "completed"].copy()
    if done.empty:
        return done
    done["score"] = [rank_score(r) for _, r in done.iterrows()]
    done = done.sort_values("score", ascending=not greater_is_better, kind="mergesort")
    best = done.drop_duplicates("candidate", keep="first").reset_index(drop=True)
    costs = [_column(best, c).to_numpy(dtype=float) for c in COSTS]
    best["pareto"] = pareto_rows(best["score"].to_numpy(dtype=float), costs, greater_is_better)
    return best


def _column(frame: pd.DataFrame, col: str) -> pd.Series:
    """A numeric column (NaN where missing or not a number)."""
    if col not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[col], errors="coerce")


def _chosen_row(lb: pd.DataFrame, chosen: Any) -> Dict[str, Any]:
    if chosen is None or "trial_id" not in lb:
        return {}
    rows = lb[lb["trial_id"].astype(str) == str(chosen)]
    return rows.iloc[0].to_dict() if len(rows) else {}


def _fmt(value: Any, digits: int = 5) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{v:.{digits}f}" if np.isfinite(v) else "-"


def _size(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if not np.isfinite(v):
        return "-"
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if v >= scale:
            return f"{v / scale:.1f} {unit}"
    return f"{v:.0f} B"


def _headline(ctx: ReportContext) -> str:
    """The chosen model in words, then its figures as a two-column table."""
    s, best = ctx.summary, ctx.best
    kind = (best.get("final_model") or {}).get("kind", "refit")
    what = (f"an ensemble of {len(best['members'])} trials" if best.get("members")
            else f"trial {esc(best.get('trial_id'))}")
    text = (f"<p class=\"lead\">Chosen model: <b>{esc(best.get('candidate'))}</b> ({what}; final model "
            f"{esc(kind)}).</p>")
    row = _chosen_row(ctx.lb, ctx.chosen)
    validation = (s.get("validation") or {}).get("scheme", "validation")
    facts = [("validation " + ctx.metric, f"{_fmt(best.get('score'))} ({validation})")]
    if s.get("test_score") is not None:
        facts.append((f"test {ctx.metric}", f"{_fmt(s['test_score'])} on {s.get('n_test_rows', '?')} held-out rows"))
        others = {k: v for k, v in (s.get("test_metrics") or {}).items() if k != ctx.metric and v == v}
        if others:
            facts.append(("other test metrics", ", ".join(f"{k} {_fmt(v, 4)}" for k, v in others.items())))
    else:
        facts.append((f"test {ctx.metric}", "no test data (set data.test_path or data.test_fraction)"))
    latency = _fmt(row.get("latency_ms_single_row"), 2)
    facts.append(("single-row latency", f"{latency} ms" if latency != "-" else "not measured"))
    facts.append(("model file size", _size(best.get("model_size_bytes", row.get("model_size_bytes")))
                  + " (model.skops, compressed)"))
    cal = best.get("calibration")
    if cal:
        ece = (s.get("test_calibration") or {}).get("ece")
        facts.append(("probabilities", f"{cal.get('method')} calibration"
                      + (f" (test expected calibration error {ece:.3f})" if ece is not None else "")))
    if best.get("threshold") is not None:
        facts.append(("decision threshold", f"{best['threshold']:.4f} on P({s.get('positive_class')})"))
    view = pd.DataFrame(facts, columns=["", "value"])
    return text + table(view, index=False, table_id="decision-facts")


def _candidates_table(ctx: ReportContext) -> str:
    best = best_per_candidate(ctx.lb, ctx.greater_is_better)
    if best.empty:
        return '<p class="note">No trial completed.</p>'
    view = pd.DataFrame({
        "candidate": best["candidate"].astype(str),
        "algorithm": best["algorithm"].astype(str) if "algorithm" in best else "",
        "trial_id": best["trial_id"].astype(str),
        f"validation {ctx.metric}": best["score"].astype(float),
        "latency_ms_single_row": _column(best, "latency_ms_single_row").round(3),
        "model_size_kB": (_column(best, "model_size_bytes") / 1e3).round(1),
        "pareto": np.where(best["pareto"], PARETO_MARK, ""),
    })
    chosen = ctx.chosen if ctx.chosen is not None else ENSEMBLE_ID
    note = (f'<p class="note">The best trial of each candidate. {PARETO_MARK}: Pareto-optimal, no other row has '
            f"a score at least as good with a latency and a size at least as low. Latency: one row, as measured "
            "after the trial; the chosen model is highlighted.</p>")
    return note + table(view, sortable=True, index=False, highlight=chosen, highlight_col="trial_id",
                        table_id="candidates-table")


def decision_section(ctx: ReportContext) -> str:
    """The first section: what was chosen, how well it does, and what else was on offer."""
    if not ctx.best:
        return section("Decision", '<p class="note">No model was chosen (no trial completed, or '
                       "mode=candidates_only).</p>", "decision")
    body = _headline(ctx) + "<h3>Best trial of each candidate</h3>" + _candidates_table(ctx)
    return section("Decision", body, "decision")
