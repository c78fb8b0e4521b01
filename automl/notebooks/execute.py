"""Fill a notebook's outputs by running its code cells in this process (no Jupyter kernel).

A kernel takes seconds to start; `automl fit` must stay fast, so the code cells run here, with
IPython's display rules in small: the value of a cell's last expression and anything passed to
``display`` become outputs (HTML when the object has ``_repr_html_``), printed text becomes a
stream output, and every open matplotlib figure becomes a PNG. The cells are exactly what a
user re-executes later (nbclient or Jupyter), so the saved outputs are what the code computes.
The cells run with the staged run folder as the current directory (``os.chdir``, restored after).
"""
from __future__ import annotations

import ast
import base64
import contextlib
import io
import os
import sys
import warnings
from typing import Any, Dict, List

import nbformat


_PANDAS_OPTIONS = ("display.max_colwidth", "display.max_columns", "display.max_rows", "display.width",
                   "display.precision")


def _mime_bundle(value: Any) -> Dict[str, str]:
    data = {"text/plain": repr(value)}
    html = getattr(value, "_repr_html_", None)
    if callable(html):
        try:
            text = html()
        except Exception:  # a broken HTML repr falls back to text, as IPython does
            text = None
        if text:
            data["text/html"] = text
    return data


def _open_figures() -> set:
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        return set()
    return set(sys.modules["matplotlib.pyplot"].get_fignums())


def _figures(before: set) -> List[Dict[str, str]]:
    """The figures a cell opened, as PNG outputs (then closed; other figures are left alone)."""
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        return []
    import matplotlib.pyplot as plt

    out = []
    for num in sorted(set(plt.get_fignums()) - before):
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
        out.append({"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                    "text/plain": f"<Figure size {fig.get_size_inches()[0] * 72:.0f}x{fig.get_size_inches()[1] * 72:.0f}>"})
        plt.close(fig)
    return out


def run_cells(nb: nbformat.NotebookNode, workdir: str, skip_tag: str = "") -> nbformat.NotebookNode:
    """Execute every code cell of ``nb`` with ``workdir`` as the current folder; outputs in place.

    Cells tagged ``skip_tag`` are left unrun (no outputs, no execution count).

    Raises the first exception a cell raises (with the cell's index) so a broken notebook is
    never saved looking finished.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        # A headless backend for this process only: setting MPLBACKEND in os.environ would leak
        # into every kernel or subprocess started later (their figures would never display).
        matplotlib.use("Agg")
    namespace: Dict[str, Any] = {"__name__": "__main__"}
    previous = os.getcwd()
    count = 0
    import pandas as pd

    # Cells may set pandas display options; the ones they touch are restored afterwards.
    restore = pd.option_context(*[v for key in _PANDAS_OPTIONS for v in (key, pd.get_option(key))])
    try:
        restore.__enter__()
        os.chdir(workdir)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or (skip_tag and skip_tag in cell.get("metadata", {}).get("tags", [])):
                continue
            count += 1
            outputs: List[Any] = []

            def display(*objs: Any, **_: Any) -> None:
                for obj in objs:
                    outputs.append(nbformat.v4.new_output("display_data", data=_mime_bundle(obj)))

            namespace["display"] = display
            tree = ast.parse(cell.source)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            stdout = io.StringIO()
            before = _open_figures()
            with contextlib.redirect_stdout(stdout), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    exec(compile(tree, f"<cell {index}>", "exec"), namespace)
                    value = eval(compile(ast.Expression(last.value), f"<cell {index}>", "eval"), namespace) \
                        if last is not None else None
                except Exception as exc:
                    raise RuntimeError(f"notebook cell {index} failed: {type(exc).__name__}: {exc}") from exc
            text = stdout.getvalue()
            if text:
                outputs.insert(0, nbformat.v4.new_output("stream", name="stdout", text=text))
            for fig in _figures(before):
                outputs.append(nbformat.v4.new_output("display_data", data=fig))
            if value is not None and not _is_figure_call(last):
                outputs.append(nbformat.v4.new_output("execute_result", data=_mime_bundle(value),
                                                      execution_count=count))
            cell.outputs = outputs
            cell.execution_count = count
    finally:
        os.chdir(previous)
        restore.__exit__(None, None, None)
    return nb


def _is_figure_call(node: Any) -> bool:
    """``plt.show()`` returns None; a trailing figure object is shown once, as the PNG."""
    try:
        src = ast.unparse(node)
    except Exception:
        return False
    return src.startswith("plt.") or src.startswith("plots.plot_")
