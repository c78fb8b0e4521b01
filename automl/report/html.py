"""HTML building blocks of report.html: one self-contained page, inline CSS, JS and images."""
from __future__ import annotations

import html
import math
from typing import Any, Iterable, List, Optional

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#23395d;color:#fff;padding:18px 28px}header h1{margin:0 0 6px;font-size:22px;overflow-wrap:anywhere}
header .facts{display:flex;flex-wrap:wrap;gap:4px 18px}header .facts span{overflow-wrap:anywhere}
main{padding:8px 28px 40px}section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:18px 0;
padding:12px 18px}h2{font-size:18px;margin:6px 0 10px;color:#23395d}h3{font-size:15px;margin:14px 0 6px}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.figs figure,.figs>div{margin:0;max-width:100%;min-width:0}
p.lead{font-size:15px;margin:4px 0 10px}
img.plot{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#666;max-width:560px}
.scroll{overflow-x:auto;max-height:560px;overflow-y:auto;max-width:100%}
table{border-collapse:collapse;font-size:12.5px}th,td{border-bottom:1px solid #e6e6e6;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f1f3f7;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#aaa}
table.sortable th[data-dir=asc]:after{content:" \\2191";color:#23395d}
table.sortable th[data-dir=desc]:after{content:" \\2193";color:#23395d}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.chosen td{background:#fff6d5}
.sev-high{color:#b00020;font-weight:600}.sev-medium{color:#a15c00;font-weight:600}.sev-low{color:#555}
.note{font-size:12.5px;color:#555}
"""

# Click a header to sort by that column; numbers sort numerically, empty cells last.
SORT_JS = """
(function(){
  function key(cell){var v=cell.getAttribute('data-v');return v===null?cell.textContent.trim():v;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('data-dir')!=='asc';
        Array.prototype.forEach.call(heads,function(h){h.removeAttribute('data-dir');});
        th.setAttribute('data-dir',asc?'asc':'desc');
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=key(a.cells[col]),y=key(b.cells[col]);
          if(x===''&&y!=='')return 1;if(y===''&&x!=='')return -1;
          var nx=parseFloat(x),ny=parseFloat(y);
          var c=(!isNaN(nx)&&!isNaN(ny)&&isFinite(x)&&isFinite(y))?nx-ny:x.localeCompare(y);
          return asc?c:-c;
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def fmt(value: Any) -> tuple[str, str, bool]:
    """(shown text, sort key, is numeric) of one cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", "", True
    if isinstance(value, bool):
        return str(value), str(value), False
    if isinstance(value, int):
        return f"{value}", f"{value}", True
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}", repr(value), True
        return f"{value:.5g}", repr(value), True
    return str(value), str(value), False


def table(df: pd.DataFrame, sortable: bool = False, index: bool = True, highlight: Optional[str] = None,
          highlight_col: Optional[str] = None, classes: Optional[dict] = None, table_id: str = "") -> str:
    """A DataFrame as an HTML table; ``sortable`` adds click-to-sort headers."""
    frame = df.reset_index() if index else df
    cols = list(frame.columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    rows: List[str] = []
    for rec in frame.itertuples(index=False):
        cells = []
        for col, value in zip(cols, rec):
            value = value.item() if hasattr(value, "item") else value
            shown, key, numeric = fmt(value)
            css = []
            if numeric and shown:
                css.append("num")
            if classes and col in classes:
                css.append(classes[col](value))
            cls = f' class="{" ".join(css)}"' if css else ""
            cells.append(f'<td{cls} data-v="{esc(key)}">{esc(shown)}</td>')
        mark = ""
        if highlight is not None and highlight_col in cols and str(rec[cols.index(highlight_col)]) == str(highlight):
            mark = ' class="chosen"'
        rows.append(f"<tr{mark}>{''.join(cells)}</tr>")
    attrs = ' class="sortable"' if sortable else ""
    tid = f' id="{esc(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table{tid}{attrs}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def figures(items: Iterable[tuple[str, str]]) -> str:
    """A row of (img tag, caption) figures."""
    return '<div class="figs">' + "".join(
        f"<figure>{tag}<figcaption>{esc(cap)}</figcaption></figure>" for tag, cap in items) + "</div>"


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, facts: List[tuple[str, str]], sections: List[str]) -> str:
    fact_html = "".join(f"<span><b>{esc(k)}</b> {esc(v)}</span>" for k, v in facts)
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<link rel=\"icon\" href=\"data:,\"><title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><div class=\"facts\">{fact_html}</div></header>"
            f"<main>{''.join(sections)}</main><script>{SORT_JS}</script></body></html>\n")
