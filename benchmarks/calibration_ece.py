"""Calibration on the digits demo: expected calibration error before and after, labels unchanged.

    python benchmarks/calibration_ece.py [--budget 30] [--seed 0] [--executor local|ray|auto]
                                         [--candidates dpp5-svm,...] [--out DIR]

Fits the README demo (scikit-learn's digits, 25% held out) with the given budget, then prints,
on the demo's test split: the chosen model and its calibration (summary.json's
``best.calibration``), the top-class expected calibration error (15 bins) and the mean top-class
probability with and without the calibrator, log loss both ways, accuracy, and the number of
labels that differ (0 by construction).
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time

import numpy as np


def ece(y: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    conf, pred = proba.max(axis=1), proba.argmax(axis=1)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum((which == b).mean() * abs((pred == y)[which == b].mean() - conf[which == b].mean())
                     for b in range(bins) if (which == b).any()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--executor", default="local")
    ap.add_argument("--candidates", default="", help="comma-separated candidates to keep (default: all)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import automl
    from automl.config import compose_config
    from automl.stages.prepare import prepare

    values = {"budget": {"time_limit_s": args.budget}, "search": {"executor": args.executor}, "seed": args.seed}
    if args.candidates:
        keep = set(args.candidates.split(","))
        names = compose_config([]).candidates.keys()
        values["candidates"] = {n: {"enabled": False} for n in names if n not in keep}
    out = args.out or tempfile.mkdtemp(prefix="calibration_ece_")
    t0 = time.time()
    run = automl.fit("sklearn:digits", target="target", output_dir=out, **values)
    fit_s = time.time() - t0
    test_df = prepare(compose_config([], values={**values, "data": {"path": "sklearn:digits",
                                                                     "target": "target"}})).test_df
    bundle = run.model
    y = np.array([bundle.classes.index(v) for v in test_df["target"]])
    plain = copy.copy(bundle)
    plain.calibration = None
    cal, raw = bundle.predict_proba(test_df).to_numpy(), plain.predict_proba(test_df).to_numpy()
    rows = np.arange(len(y))
    record = run.summary["best"].get("calibration") or {}
    print(f"fit: {fit_s:.1f} s, budget {args.budget:g} s, chosen {run.summary['best']['candidate']}, "
          f"{len(y)} test rows, run folder {out}")
    print("calibration:", json.dumps({k: record.get(k) for k in ("method", "reason", "temperature")}))
    for name, p in (("uncalibrated", raw), ("calibrated", cal)):
        print(f"{name:>13}: ECE {ece(y, p):.4f}  mean top probability {p.max(axis=1).mean():.4f}  "
              f"log loss {-np.mean(np.log(np.clip(p[rows, y], 1e-15, 1))):.4f}  "
              f"accuracy {np.mean(p.argmax(axis=1) == y):.4f}")
    changed = int(np.sum(bundle.predict(test_df) != plain.predict(test_df)))
    print(f"labels that differ with and without the calibrator: {changed}")


if __name__ == "__main__":
    main()
