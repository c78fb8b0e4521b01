"""The pool an ensemble is chosen from (selection/choose.py ``ensemble_pool``): the best few trials
of every candidate, then the best of the rest up to 30. A long search that spends most of its
trials on one candidate must still ensemble across candidates (credit at 300 s: 185 of 250 trials
linear, and the best 30 by score were all linear)."""
import json

import numpy as np
import pandas as pd

from automl.candidates.generate import Candidate
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext, evaluate, make_folds
from automl.selection import SelectSpec
from automl.selection.choose import MAX_MEMBERS_CONSIDERED, PER_CANDIDATE_IN_POOL, choose_ensemble, ensemble_pool

KNN = Candidate("dpp6-knn", "knn", {"categorical": "onehot", "scale": "standard"}, {"params": {}, "fixed": {}})
LINEAR = Candidate("dpp1-linear", "linear", {"categorical": "onehot", "scale": "standard"},
                   {"params": {}, "fixed": {}})


def ranked(candidates):
    """A completed leaderboard, best first, with these candidates in rank order."""
    return pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(candidates))], "candidate": candidates,
                         "status": "completed", "objective": np.linspace(1.0, 2.0, len(candidates))})


def test_small_searches_consider_every_trial():
    done = ranked(["a"] * 20 + ["b"] * 5)
    assert ensemble_pool(done) == list(done["trial_id"])


def test_a_long_search_dominated_by_one_candidate_keeps_the_others_best_few():
    cands = ["lin"] * 185 + ["xgb"] * 14 + ["svm"] * 11 + ["knn"] * 9
    done = ranked(cands)
    pool = ensemble_pool(done)
    assert len(pool) == MAX_MEMBERS_CONSIDERED
    by_id = dict(zip(done["trial_id"], done["candidate"]))
    got = pd.Series([by_id[t] for t in pool]).value_counts()
    assert {c: got[c] for c in ("xgb", "svm", "knn")} == {c: PER_CANDIDATE_IN_POOL for c in ("xgb", "svm", "knn")}
    assert got["lin"] == MAX_MEMBERS_CONSIDERED - 3 * PER_CANDIDATE_IN_POOL
    # the best of each: each candidate's first trials by rank, and the pool stays in rank order
    assert pool[:got["lin"]] == [f"t{i}" for i in range(got["lin"])]
    assert pool[got["lin"]:got["lin"] + 3] == ["t185", "t186", "t187"]
    assert pool == sorted(pool, key=lambda t: int(t[1:]))


def test_more_candidates_than_the_pool_holds_each_still_gets_its_share():
    cands = [f"c{i % 12}" for i in range(120)]  # 12 candidates, ranks interleaved
    pool = ensemble_pool(ranked(cands))
    assert len(pool) == 12 * PER_CANDIDATE_IN_POOL


def test_choose_ensemble_reads_the_pool_from_real_trials(tmp_path):
    """Real trials: 32 KNN configurations ranked above a linear one; the ensemble's pool still has
    the linear trial and leaves out the worst KNN ones."""
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = (3 * np.sin(2 * X["a"]) + 0.5 * X["b"] + rng.normal(scale=0.5, size=n)).to_numpy()
    ctx = TrialContext(X=X, y=y, folds=make_folds(y, "regression", 5, 50_000, 0.2, 0),
                       column_types={c: "numeric" for c in X}, candidates={KNN.name: KNN, LINEAR.name: LINEAR},
                       problem_type="regression", metric="rmse", seed=0, output_dir=str(tmp_path))
    rows = []
    configs = [{"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": k, f"{KNN.name}:model.weights": "uniform"}
               for k in range(3, 35)] + [{"candidate": LINEAR.name}]
    for i, config in enumerate(configs):
        rows.append({**evaluate(config, ctx, trial_id=f"t{i}"), "trial_id": f"t{i}", "candidate": config["candidate"]})
    done = pd.DataFrame(rows)
    assert (done["status"] == "completed").all(), done[["trial_id", "status", "error"]]
    done = done.sort_values("objective").reset_index(drop=True)  # rmse: lower is better
    linear_id = done.loc[done["candidate"] == LINEAR.name, "trial_id"].iloc[0]
    assert done.index[done["trial_id"] == linear_id][0] >= MAX_MEMBERS_CONSIDERED  # ranked out of the best 30
    info = ProblemInfo("regression", "rmse", False, "test")
    choice = choose_ensemble(ctx, done, info, str(tmp_path), {}, SelectSpec(), ensemble=True)
    assert linear_id in choice.ids and len(choice.ids) == MAX_MEMBERS_CONSIDERED
    assert done["trial_id"].iloc[MAX_MEMBERS_CONSIDERED - 1] not in choice.ids  # the 30th KNN made room
    json.dumps(choice.ids)
