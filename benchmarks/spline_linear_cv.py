"""The linear candidate with a spline basis per numeric column (``scale: spline``, an additive
model) against standard scaling, in cross-validation on every suite dataset's TRAIN split (never a
test file).

    python benchmarks/spline_linear_cv.py [--datasets a,b] [--max-rows 3000] [--folds 5] [--out FILE]

Uses automl's own trial code (automl.search.trial.evaluate) through build_portfolio's
dataset_context. Each scaling is scored at a few regularisation strengths (the best one counts,
as a search would find it). One JSON line per dataset. A screen for whether the option deserves a
place in the linear portfolio, judged then on the suite (docs/benchmarks.md).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_portfolio import screen_datasets  # noqa: E402
from common import METRICS, append_jsonl  # noqa: E402

STRENGTHS = {"classification": ("model.C", (0.1, 1.0, 10.0)), "regression": ("model.alpha", (0.1, 1.0, 10.0, 100.0))}


def main() -> None:
    from automl.search.trial import evaluate

    args, out, datasets = screen_datasets(__doc__, "spline_linear_cv.jsonl", 5)
    for name, spec, ctx, plan in datasets:
        cand = plan.by_name["dpp1-linear"]
        kind = "regression" if ctx.problem_type == "regression" else "classification"
        param, values = STRENGTHS[kind]
        row = {"dataset": name, "metric": spec["metric"], "rows": int(len(ctx.y))}
        for scale in ("standard", "spline"):
            started, scores = time.time(), []
            for v in values:
                point = {"candidate": cand.name, f"{cand.name}:{param}": v, f"{cand.name}:preprocess.scale": scale}
                res = evaluate(point, ctx)
                if res["status"] == "completed":
                    scores.append(res["objective"])
            best = max if METRICS[spec['metric']].greater_is_better else min
            row[scale] = best(scores) if scores else None
            row[f"{scale}_s"] = round(time.time() - started, 1)
        print(json.dumps(row), flush=True)
        append_jsonl(out, row)


if __name__ == "__main__":
    main()
