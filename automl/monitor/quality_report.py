"""Model quality in the monitor's output: ``model_quality.json`` per checked batch, the report's
section, and, over several batches (watch mode), ``model_quality_history.json`` and
``model_quality.html``: each metric per batch with its interval and the threshold line."""
from __future__ import annotations

import html
from typing import Any, Dict, List, Optional

from automl import artifacts as art
from automl.monitor.quality import CHECK, QualityResult

QUALITY_FILE = "model_quality.json"  # in each batch's results folder
HISTORY_FILE = "model_quality_history.json"  # in watch mode's output folder: one entry per batch
HISTORY_PAGE = "model_quality.html"  # the same as a page: each metric over the batches
_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}"
        "table{border-collapse:collapse} td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:right}"
        "th:first-child,td:first-child{text-align:left} .v{color:#a00} .ok{color:#070}")


def _f(v: Any) -> str:
    return "–" if v is None else f"{float(v):.4g}"


def metrics_table(result: QualityResult) -> str:
    """Each metric: value, interval, out-of-fold baseline, threshold, best constant, verdict."""
    rows = []
    for name, m in result.metrics.items():
        sign = {"greater_than": "&ge; ", "less_than": "&le; "}.get(m["comparison"] or "", "")
        verdict = ('<td class="v">violated</td>' if m["violated"] else '<td class="ok">ok</td>'
                   if m["threshold"] is not None and m["value"] is not None else "<td>not checked</td>")
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{_f(m['value'])}</td><td>[{_f(m['lower'])}, "
                    f"{_f(m['upper'])}]</td><td>{_f(m['baseline'])}</td><td>{sign}{_f(m['threshold'])}</td>"
                    f"<td>{_f(m['constant'])}</td>{verdict}</tr>")
    return (f"<table><tr><th>metric</th><th>value</th><th>{result.interval_level:.1%} interval</th>"
            f"<th>out of fold</th><th>constraint</th><th>best constant</th><th></th></tr>{''.join(rows)}</table>")


def section(result: QualityResult, history: Optional[List[Dict[str, Any]]] = None) -> str:
    """The report's model-quality section for one batch (and the metrics over the batches so far)."""
    c = result.counts
    counts = (f"<p>{c['joined']} of {c['captured_predictions']} captured prediction(s) joined with "
              f"{c['labels']} label(s); {c['predictions_without_label']} without a label yet"
              + (f"; {c['labels_not_usable']} label(s) not usable (not a class of the model)"
                 if c.get("labels_not_usable") else "") + ".</p>")
    body = f'<p class="v">{html.escape(result.note)}</p>' if result.note else metrics_table(result)
    rule = ("<p><small>A metric violates its constraint when its whole bootstrap interval lies on the wrong "
            "side of the threshold.</small></p>")
    over = charts(history) if history and len(history) > 1 else ""
    return f'<h2 id="model-quality">Model quality ({CHECK})</h2>{counts}{body}{rule}{over}'


# ----------------------------------------------------------------------------- over several batches
def history_entry(result: QualityResult, checked_at: str, output: str) -> Dict[str, Any]:
    return {"checked_at": checked_at, "output": output, "joined": result.counts["joined"], "note": result.note or None,
            "metrics": {name: {k: m[k] for k in ("value", "lower", "upper", "threshold", "comparison", "violated")}
                        for name, m in result.metrics.items()}}


def append_history(folder: str, entry: Dict[str, Any], so: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Add one batch to ``model_quality_history.json`` in ``folder`` and rewrite ``model_quality.html``."""
    so = so or {}
    url = art.join(folder, HISTORY_FILE)
    batches = art.read_json(url, so)["batches"] if art.exists(url, so) else []
    batches.append(entry)
    art.write_json(url, {"batches": batches}, so)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>automl monitor: model quality</title>"
            f"<style>{_CSS}</style></head><body><h1>Model quality over {len(batches)} batch(es)</h1>"
            f"{charts(batches)}</body></html>\n")
    art.write_text(art.join(folder, HISTORY_PAGE), page, so)
    return batches


def charts(batches: List[Dict[str, Any]]) -> str:
    """One inline SVG per metric: each batch's value with its interval, and the threshold as a dashed line."""
    names: List[str] = []
    for b in batches:
        names += [n for n in b["metrics"] if n not in names]
    legend = ("<p><small>Each batch in the order checked: its value (a dot, red when violated) and bootstrap "
              "interval (the bar); the dashed red line is the threshold.</small></p>")
    return legend + "".join(_chart(n, batches) for n in names)


def _chart(name: str, batches: List[Dict[str, Any]]) -> str:
    pts = [(i, b["metrics"].get(name) or {}) for i, b in enumerate(batches)]
    vals = [v for _, m in pts for v in (m.get("lower"), m.get("upper"), m.get("value"), m.get("threshold"))
            if v is not None]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.1 or 0.05
    lo, hi = lo - pad, hi + pad
    w, h, left, top = 640, 180, 50, 10
    step = (w - left - 20) / max(len(batches) - 1, 1)

    def y(v: float) -> float:
        return top + (h - 2 * top) * (hi - v) / (hi - lo)

    parts = [f'<h3>{html.escape(name)}</h3><svg class="quality-chart" data-metric="{html.escape(name)}" '
             f'width="{w}" height="{h}" role="img">',
             f'<text x="4" y="{y(hi - pad) + 4:.1f}" font-size="11">{hi - pad:.3g}</text>',
             f'<text x="4" y="{y(lo + pad) + 4:.1f}" font-size="11">{lo + pad:.3g}</text>']
    thr = [(i, m["threshold"]) for i, m in pts if m.get("threshold") is not None]
    if thr:
        line = " ".join(f"{left + i * step:.1f},{y(t):.1f}" for i, t in thr)
        parts.append(f'<polyline class="threshold" points="{line}" fill="none" stroke="#a00" stroke-dasharray="5,4"/>')
    for i, m in pts:
        if m.get("value") is None:
            continue
        x, color = left + i * step, "#a00" if m.get("violated") else "#3465a4"
        if m.get("lower") is not None and m.get("upper") is not None:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y(m["lower"]):.1f}" y2="{y(m["upper"]):.1f}" '
                         f'stroke="{color}"/>')
        parts.append(f'<circle class="batch" cx="{x:.1f}" cy="{y(m["value"]):.1f}" r="3.5" fill="{color}">'
                     f'<title>batch {i + 1}: {m["value"]:.4g}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
