"""The report's "Bias" section: the run's ``bias.json`` (explain.facet, docs/bias.md) as a table
and a plain reading of each comparison. Absent when the run has no facet."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

import pandas as pd

from automl.report.html import esc, section, table
from automl.rundir.bias import read_bias

if TYPE_CHECKING:
    from automl.report.context import ReportContext


def _interval(iv: Optional[Mapping[str, float]], scale: float = 1.0, digits: int = 3) -> str:
    """"value (low to high)" of one metric; "" when it has none."""
    if not iv:
        return ""
    return (f"{iv['value'] * scale:+.{digits}f} ({iv['low'] * scale:+.{digits}f} to "
            f"{iv['high'] * scale:+.{digits}f})")


def _rate(value: Optional[float], share: bool) -> str:
    if value is None:
        return ""
    return f"{100 * value:.1f}%" if share else f"{value:.4g}"


def bias_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """One row per compared group: rows, CI, the favourable rates (or means) and DPL, DPPL."""
    share = doc.get("measure") != "mean"
    what, label = ("favourable", "label") if share else ("mean", "target")
    level = f"{round(100 * doc.get('confidence', 0.95))}%"
    rows = []
    for c in doc.get("comparisons", []):
        rows.append({
            "group (d)": c["group"], "rows d / rest": f"{c['n']:,} / {c['n_rest']:,}",
            f"CI ({level} interval)": _interval(c.get("ci")),
            f"{what} {label} d / rest": f"{_rate(c.get('label_rate'), share)} / {_rate(c.get('label_rate_rest'), share)}"
            if c.get("dpl") else "",
            f"DPL ({level} interval)": _interval(c.get("dpl")),
            f"{what} prediction d / rest": (f"{_rate(c.get('prediction_rate'), share)} / "
                                            f"{_rate(c.get('prediction_rate_rest'), share)}") if c.get("dppl") else "",
            f"DPPL ({level} interval)": _interval(c.get("dppl")),
        })
    return pd.DataFrame(rows)


def _gap_sentence(group: str, iv: Mapping[str, float], doc: Mapping[str, Any], predicted: bool) -> str:
    """One plain sentence about a DPL (``predicted`` false) or a DPPL."""
    level = f"{round(100 * doc.get('confidence', 0.95))}%"
    mean = doc.get("measure") == "mean"
    scale, unit, num = (1.0, "", "{:.3g}") if mean else (100.0, " points", "{:.1f}")
    value, low, high = scale * iv["value"], scale * iv["low"], scale * iv["high"]
    oof = "out-of-fold " if "out-of-fold" in str(doc.get("predictions")) else ""
    where = f"in the model's {oof}predictions" if predicted else ("in the target" if mean else "in the training labels")
    if low <= 0 <= high:
        return (f"{where.capitalize()}, group {group} and the rest differ by {num.format(value)}{unit}, within the "
                f"noise: the {level} interval {num.format(low)} to {num.format(high)} includes 0.")
    ends = sorted((abs(low), abs(high)))
    span = f"({level} interval {num.format(ends[0])} to {num.format(ends[1])})"
    if mean:
        noun = "prediction" if predicted else "target"
        return (f"Group {group}'s mean {noun} is {num.format(abs(value))} {'lower' if value > 0 else 'higher'} "
                f"than the rest's {span}.")
    return (f"Group {group} receives the favourable outcome ({doc.get('favourable')}) {num.format(abs(value))}{unit} "
            f"{'less' if value > 0 else 'more'} often than the rest {where} {span}.")


def readings(doc: Mapping[str, Any]) -> List[str]:
    """Plain sentences: each group's share of the rows, then its DPL and DPPL."""
    out = []
    total = max(1, int(doc.get("n_rows") or 0))
    for c in doc.get("comparisons", []):
        g = c["group"]
        text = f"Group {g} is {c['n']:,} of {total:,} rows ({100 * c['n'] / total:.0f}%)."
        if c.get("dpl"):
            text += " " + _gap_sentence(g, c["dpl"], doc, predicted=False)
        if c.get("dppl"):
            text += " " + _gap_sentence(g, c["dppl"], doc, predicted=True)
        out.append(text)
    return out


def _notes(doc: Mapping[str, Any]) -> str:
    facet = esc(doc.get("facet"))
    if doc.get("measure") == "mean":
        what = "DPL and DPPL compare the mean target and the mean prediction of a group with the rest's (regression)"
    else:
        what = (f"the favourable outcome is <b>{esc(doc.get('favourable'))}</b> ({esc(doc.get('favourable_from'))}); "
                "DPL = the rest's share of favourable labels minus the group's, DPPL the same on predicted labels")
    preds = (f"Predictions: {esc(doc['predictions'])}." if doc.get("predictions")
             else "No out-of-fold predictions were kept, so there is no DPPL.")
    feature = ("It is one of the model's features (<code>data.exclude=[" + facet + "]</code> leaves it out)."
               if doc.get("facet_is_feature") else "It is not one of the model's features.")
    return (f'<p class="note">Facet <code>{facet}</code>: each group d against the rest. CI = (n_rest - n_d) / '
            f"(n_rest + n_d): above 0, d has fewer rows than the rest; {what}: above 0, d gets less of it. "
            f"{preds} {feature} Intervals: percentile bootstrap over rows, {doc.get('resamples')} resamples, "
            f"seed {doc.get('seed')}. The same in <code>bias.json</code> and <code>run.bias()</code>; see "
            "docs/bias.md.</p>")


def bias_body(doc: Mapping[str, Any]) -> str:
    if not doc.get("comparisons"):
        return (f'<p class="note">Facet <code>{esc(doc.get("facet"))}</code> has a single value '
                f"({esc(', '.join(doc.get('groups') or {}))}): there are no groups to compare.</p>")
    sentences = "".join(f"<li>{esc(s)}</li>" for s in readings(doc))
    return (f'<ul class="lead">{sentences}</ul>' + table(bias_table(doc), index=False, table_id="bias-table")
            + _notes(doc))


def bias_section(ctx: "ReportContext") -> str:
    """The "Bias" section from ``bias.json`` ("" when the run has none)."""
    doc: Optional[Dict[str, Any]] = read_bias(ctx.out, ctx.so)
    if not doc:
        return ""
    return section("Bias", bias_body(doc), "bias")
