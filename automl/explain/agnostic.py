"""A model-agnostic estimate of Shapley values over the input columns (for SVMs, k-NN, MLPs,
stacked or mixed ensembles, custom algorithms: any model with a prediction function).

Interventional permutation sampling (Strumbelj and Kononenko, 2014), as shap's
PermutationExplainer does it: for each of ``n_permutations`` orders of the input columns (half of
them the reverse of the other half, which lowers the variance) and each background row, columns
are switched from the background row's value to the explained row's one at a time, and each switch
is credited with the change of the output. Each order's credits telescope, so additivity is exact
by construction: ``base + sum`` equals the model's output on the row, ``base`` being its mean
output over the background rows. The values themselves are estimates. The permutations are drawn
from a fixed seed, the same for every row, so a row's explanation does not depend on its batch.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

N_PERMUTATIONS = 8  # orders of the columns per row (4 antithetic pairs)
N_BACKGROUND = 16  # background rows each order starts from
MAX_EVAL_ROWS = 50_000  # rows predicted per call (a chunk of explained rows at a time)


def permutations(n_columns: int, n: int, seed: int) -> np.ndarray:
    """``n`` orders of the columns, every second one the reverse of the one before."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(out[-1][::-1] if i % 2 else rng.permutation(n_columns))
    return np.array(out, dtype=int).reshape(n, n_columns)


def _hybrids(x: pd.DataFrame, background: pd.DataFrame, orders: np.ndarray) -> pd.DataFrame:
    """All rows the estimate predicts for one explained row ``x`` (one-row frame), in the order
    (permutation, step 0..d, background row): step t has the first t columns of the order from x."""
    n_perm, d = orders.shape
    b = len(background)
    position = np.empty_like(orders)
    position[np.arange(n_perm)[:, None], orders] = np.arange(d)  # position[p, col]: its step in order p
    steps = np.arange(d + 1)
    cols = {}
    for j, col in enumerate(background.columns):
        from_x = (position[:, j][:, None] < steps[None, :])  # (perm, step)
        mask = np.repeat(from_x.reshape(-1), b)  # (perm * steps * b,), in the order of the rows
        base_vals = background[col].to_numpy()
        value = x[col].to_numpy()[0]
        if base_vals.dtype.kind in "iufb" and isinstance(value, (int, float, np.number, bool)):
            cols[col] = np.where(mask, float(value), np.tile(base_vals.astype(float), n_perm * (d + 1)))
        else:  # text, categories, dates, or a mix: object values, each kept as it is
            arr = np.tile(base_vals.astype(object), n_perm * (d + 1))
            arr[mask] = value
            cols[col] = arr
    return pd.DataFrame(cols)


def permutation_shap(predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, background: pd.DataFrame,
                     columns: Sequence[str], n_permutations: int = N_PERMUTATIONS,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values (rows, outputs, columns), base (rows, outputs)) for ``predict``, a function from a frame
    of ``columns`` to a 2-d array of outputs (rows, outputs)."""
    columns = list(columns)
    bg = background[columns].reset_index(drop=True)
    d = len(columns)
    orders = permutations(d, max(2, n_permutations), seed)
    per_row = len(orders) * (d + 1) * len(bg)
    chunk = max(1, MAX_EVAL_ROWS // max(1, per_row))
    values, bases = [], []
    for start in range(0, len(X), chunk):
        part = X.iloc[start:start + chunk][columns]
        frames = [_hybrids(part.iloc[[i]], bg, orders) for i in range(len(part))]
        out = np.asarray(predict(pd.concat(frames, ignore_index=True)), dtype=float)
        out = out.reshape(len(part), len(orders), d + 1, len(bg), -1).mean(axis=3)  # (rows, perm, step, outputs)
        delta = np.diff(out, axis=2)  # step t -> t+1 switched column orders[p, t]
        phi = np.zeros((len(part), out.shape[-1], d))
        for p, order in enumerate(orders):
            phi[:, :, order] += delta[:, p].transpose(0, 2, 1)
        values.append(phi / len(orders))
        bases.append(out[:, :, 0].mean(axis=1))
    return np.concatenate(values), np.concatenate(bases)
