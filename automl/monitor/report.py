"""A small self-contained HTML page: baseline against current for every feature with a violation."""
from __future__ import annotations

import html
from typing import Any, Dict, List, Optional, Sequence, Tuple

from automl.monitor.checks import CheckResult, bin_labels

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left} .v{color:#a00} .ok{color:#070} code{background:#f4f4f4;padding:0 .2em}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
"""
_BASE, _CUR = "#7a9cc6", "#e07b39"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _bars(labels: List[str], base: List[float], cur: List[float]) -> str:
    """Horizontal paired bars (shares of baseline and current) as inline SVG."""
    tb, tc = max(sum(base), 1e-12), max(sum(cur), 1e-12)
    pb, pc = [b / tb for b in base], [c / tc for c in cur]
    top = max(pb + pc + [1e-12])
    row, width, left = 26, 420, 170
    h = row * len(labels) + 10
    parts = [f'<svg width="{left + width + 70}" height="{h}" role="img">']
    for i, (lab, b, c) in enumerate(zip(labels, pb, pc)):
        y = 5 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 15}" font-size="12" text-anchor="end">'
                     f'{html.escape(lab[:28])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{width * b / top:.1f}" height="10" fill="{_BASE}"/>')
        parts.append(f'<rect x="{left}" y="{y + 12}" width="{width * c / top:.1f}" height="10" fill="{_CUR}"/>')
        parts.append(f'<text x="{left + width * max(b, c) / top + 4:.1f}" y="{y + 16}" font-size="11">'
                     f'{b:.0%} / {c:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _distribution(name: str, base: Dict[str, Any], cur: Dict[str, Any], result: CheckResult,
                  new_values: bool) -> Optional[Tuple[List[str], List[float], List[float]]]:
    """Labels, baseline and current counts to draw (with values outside the domain when they matter)."""
    d = result.distances.get(name)
    if d and not new_values:
        return d["labels"], d["baseline_counts"], d["current_counts"]
    bh = (base.get("numeric") or {}).get("histogram")
    ch = (cur.get("numeric") or {}).get("histogram")
    if bh and ch:
        return bin_labels(bh["edges"]), bh["counts"], ch["counts"]
    bf = (base.get("categorical") or {}).get("frequencies") or {}
    cf = (cur.get("categorical") or {}).get("frequencies") or {}
    if bf or cf:
        labels = list(bf)[:15] + [k for k in list(cf)[:10] if k not in bf]
        return labels, [bf.get(k, 0) for k in labels], [cf.get(k, 0) for k in labels]
    return None


def _stats_rows(base: Dict[str, Any], cur: Dict[str, Any]) -> str:
    def share(st: Dict[str, Any], key: str, of: str) -> Optional[str]:
        return f"{st[key] / st[of]:.1%}" if st and st.get(of) else None

    rows = [("rows", base.get("count"), cur.get("count")), ("missing", share(base, "missing", "count"),
            share(cur, "missing", "count")), ("not of the type", share(base, "invalid", "present"),
                                              share(cur, "invalid", "present"))]
    bn, cn = base.get("numeric") or {}, cur.get("numeric") or {}
    if bn or cn:
        for key in ("mean", "std", "min", "max"):
            rows.append((key, bn.get(key), cn.get(key)))
        rows.append(("median", (bn.get("quantiles") or {}).get("p50"), (cn.get("quantiles") or {}).get("p50")))
    bc, cc = base.get("categorical") or {}, cur.get("categorical") or {}
    if bc or cc:
        rows.append(("distinct values", bc.get("distinct"), cc.get("distinct")))
    return "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(b)}</td><td>{_fmt(c)}</td></tr>" for k, b, c in rows)


def render_report(result: CheckResult, baseline: Dict[str, Any], meta: Dict[str, Any],
                  extra: Sequence[str] = ()) -> str:
    """The HTML page for one checked batch; ``extra``: more sections (HTML), e.g. model quality."""
    by_feature: Dict[str, List[Any]] = {}
    for v in result.violations:
        by_feature.setdefault(v.feature_name, []).append(v)
    head = (f"<h1>automl monitor: {len(result.violations)} violation(s) in {result.n_rows} rows</h1>"
            f"<p>run <code>{html.escape(str(meta.get('run_dir', '')))}</code>, data "
            f"<code>{html.escape(str(meta.get('data', '')))}</code>, "
            f"checked {html.escape(str(meta.get('checked_at', '')))}</p>")
    if not result.violations:
        body = '<p class="ok">No violations: the batch matches the baseline.</p>'
    else:
        body = "<table><tr><th>feature</th><th>check</th><th>description</th></tr>" + "".join(
            f'<tr><td>{html.escape(v.feature_name)}</td><td class="v">{v.constraint_check_type}</td>'
            f'<td style="text-align:left">{html.escape(v.description)}</td></tr>'
            for v in result.violations) + "</table>"
    legend = (f'<p class="legend">share of values:<span style="background:{_BASE}"></span>baseline'
              f'<span style="background:{_CUR}"></span>current</p>')
    sections = []
    for name, vs in by_feature.items():
        if all(v.details.get("report_section") is False for v in vs):
            continue  # shown in a section of its own (e.g. model quality, in ``extra``)
        base = (baseline.get("features") or {}).get(name) or {}
        cur = (result.statistics.get("features") or {}).get(name) or {}
        kind = base.get("inferred_type", "not in the baseline")
        parts = [f"<h2>{html.escape(name)} <small>({html.escape(kind)})</small></h2>",
                 "<ul>" + "".join(f'<li><span class="v">{v.constraint_check_type}</span>: '
                                  f'{html.escape(v.description)}</li>' for v in vs) + "</ul>"]
        if base or cur:
            parts.append("<table><tr><th></th><th>baseline</th><th>current</th></tr>"
                         + _stats_rows(base, cur) + "</table>")
        dist = _distribution(name, base, cur, result,
                             any(v.constraint_check_type == "categorical_values_check" for v in vs))
        if dist and sum(dist[2]) + sum(dist[1]) > 0:
            parts.append(legend + _bars(*dist))
        sections.append("".join(parts))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>automl monitor</title><style>{_CSS}</style>"
            f"</head><body>{head}{body}{''.join(extra)}{''.join(sections)}</body></html>\n")
