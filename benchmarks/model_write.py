"""Seconds per MB (of the pickled model) to write a forest as automl's model file, by deflate level.

    python benchmarks/model_write.py [--trees 200] [--levels 1,6] [--suite ../shared/benchmarks]

The select stage plans the final model's write from the trials' pickled sizes
(selection/build.py SAVE_S_PER_MB): the write is skops with deflate (rundir/modelfile.py
dump_model) followed by the audit of the file's types (untrusted_types). This fits an
extra-trees classifier and a random forest on hpc (4 classes) and an extra-trees regressor on
ames, with automl's default leaves (one row per leaf allowed), and prints per model and level the
file size, the CPU seconds of the dump and of the audit, and both per pickled MB and per tree;
two forests of 500 trees on 500 noise rows (two levels deep, and full) separate the cost per tree
from the cost per MB. CPU time
(time.process_time) so that a loaded machine does not inflate it; a loaded core's wall is higher.
Each model is written twice per level, in turn: by skops' own ``dumps`` (its schema.json
indented) and by automl's ``dump_model`` (the same schema compact; the "writer" column).
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_SUITE, load_suite  # noqa: E402


def matrix(suite: Path, name: str, target: str):
    import numpy as np
    import pandas as pd

    if name == "noise":  # 500 rows, 5 columns, 4 random classes: each tree's cost apart from its size
        rng = np.random.default_rng(0)
        return rng.normal(size=(500, 5)), rng.integers(0, 4, 500)
    df = pd.read_csv(suite / name / "train.csv")
    y = df.pop(target)
    return pd.get_dummies(df, dummy_na=True).astype(float).fillna(0).to_numpy(), y


def cpu_seconds(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--levels", default="1,6", help="deflate levels (zlib's default is 6)")
    args = ap.parse_args()
    import skops.io as sio
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier

    suite, specs = Path(args.suite), load_suite(Path(args.suite))
    models = [("hpc", ExtraTreesClassifier(n_estimators=args.trees, max_features=0.5, random_state=0)),
              ("hpc", RandomForestClassifier(n_estimators=args.trees, random_state=0)),
              ("ames", ExtraTreesRegressor(n_estimators=args.trees, max_features=0.5, random_state=0)),
              ("noise", ExtraTreesClassifier(n_estimators=500, max_depth=2, random_state=0)),
              ("noise", ExtraTreesClassifier(n_estimators=500, random_state=0))]
    from automl.rundir.modelfile import dump_model

    writers = {"skops": lambda model, level: sio.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=level),
               "automl": dump_model}
    print("| data | model | trees | pickled MB | level | writer | file MB | dump s | audit s | ms per pickled MB | "
          "ms per tree |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, model in models:
        X, y = matrix(suite, name, specs[name]["target"] if name in specs else "")
        model.fit(X, y)
        mb = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6
        for level in (int(v) for v in args.levels.split(",")):
            for writer, write in writers.items():
                box = {}
                dump = cpu_seconds(lambda: box.update(data=write(model, level)))
                audit = cpu_seconds(lambda: sio.get_untrusted_types(data=box["data"]))
                print(f"| {name} | {type(model).__name__} | {model.n_estimators} | {mb:.1f} | {level} | {writer} | "
                      f"{len(box['data']) / 1e6:.1f} | {dump:.2f} | {audit:.2f} | "
                      f"{1000 * (dump + audit) / mb:.1f} | {1000 * (dump + audit) / model.n_estimators:.2f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
