"""Explanations: per-feature contributions (SHAP values) of a saved model, in its input columns.

    from automl.explain import Explainer
    table = Explainer(bundle, background=train_df).frame(rows)   # or run.explain(rows)

One value per input column (the one-hot columns, missing indicators and date parts of a column
are summed) plus the base value; base + sum is the model's raw output (see explainer.py for the
output space of each kind of model). Exact for trees (TreeSHAP) and linear models; a seeded
permutation estimate otherwise. docs/explain.md has the details.
"""
from automl.explain.columns import ExplainError
from automl.explain.drift import ndcg_at_k
from automl.explain.explainer import BASE_COLUMN, CLASS_COLUMN, Contributions, Explainer, background_sample

__all__ = ["BASE_COLUMN", "CLASS_COLUMN", "Contributions", "ExplainError", "Explainer", "background_sample",
           "ndcg_at_k"]
