"""CatBoost on native categoricals against CatBoost on ordinal codes and XGBoost, in cross-validation
on every suite dataset's TRAIN split (never a test file), each algorithm's first portfolio entry.

    python benchmarks/catboost_native_cv.py [--datasets a,b] [--max-rows 3000] [--folds 3] [--out FILE]

Uses automl's own trial code (automl.search.trial.evaluate) through build_portfolio's
dataset_context; datasets without a categorical column are skipped. One JSON line per dataset:
the three cross-validated scores and their times. A quick screen for which candidates deserve a
suite run (docs/benchmarks.md), not a verdict on defaults.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_portfolio import algorithm_configs, applicable_params, screen_datasets  # noqa: E402
from common import append_jsonl  # noqa: E402


def main() -> None:
    from automl.candidates.space import load_space
    from automl.search.trial import evaluate

    args, out, datasets = screen_datasets(__doc__, "catboost_native_cv.jsonl", 3)
    for name, spec, ctx, plan in datasets:
        if "categorical" not in ctx.column_types.values():
            continue
        xgb = plan.by_name["dpp0-xgboost"]
        ordinal = dataclasses.replace(xgb, name="catboost-ordinal", algorithm="catboost", space=load_space("catboost"),
                                      processing={"categorical": "ordinal", "scale": "none"})
        native = dataclasses.replace(ordinal, name="catboost-native", processing={"categorical": "native", "scale": "none"})
        ctx.candidates.update({ordinal.name: ordinal, native.name: native})
        row = {"dataset": name, "metric": spec["metric"], "rows": int(len(ctx.y))}
        for cand in (xgb, ordinal, native):
            params = algorithm_configs(cand.algorithm, cand.space, ctx.problem_type, 0)[0]
            point = {"candidate": cand.name, **{f"{cand.name}:{k}": v for k, v in
                                                 applicable_params(params, cand.space, ctx.problem_type).items()}}
            started = time.time()
            res = evaluate(point, ctx)
            row[cand.name] = res.get("objective") if res["status"] == "completed" else res["status"]
            row[f"{cand.name}_s"] = round(time.time() - started, 1)
        print(json.dumps(row), flush=True)
        append_jsonl(out, row)


if __name__ == "__main__":
    main()
