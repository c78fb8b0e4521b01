"""Feature-attribution drift: how far a live batch's ranking of the features by mean |SHAP|
has moved from the baseline's, as SageMaker Clarify measures it (NDCG at k).

With ``a(f)`` the baseline's mean |contribution| of feature ``f``, ``F`` the features ranked by
the live batch's mean |contribution| and ``F'`` ranked by the baseline's::

    DCG  = sum_{i=1..k} a(F_i)  / log2(i + 1)
    iDCG = sum_{i=1..k} a(F'_i) / log2(i + 1)
    NDCG = DCG / iDCG          (1 = the baseline's order; the baseline's top features fell: lower)
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np


def ranking(attributions: Dict[str, float]) -> List[str]:
    """Features by attribution, largest first (ties by name, so the order is reproducible)."""
    return sorted(attributions, key=lambda f: (-float(attributions[f]), str(f)))


def ndcg_at_k(baseline: Dict[str, float], live: Dict[str, float], k: int = 10) -> float:
    """NDCG at ``k`` of the live ranking, graded by the baseline attributions (1.0 when iDCG is 0)."""
    features = [f for f in baseline if f in live]
    if not features:
        return 1.0
    k = max(1, min(int(k), len(features)))
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    live_order = ranking({f: live[f] for f in features})[:k]
    ideal_order = ranking({f: baseline[f] for f in features})[:k]
    dcg = float(sum(float(baseline[f]) * w for f, w in zip(live_order, discount)))
    idcg = float(sum(float(baseline[f]) * w for f, w in zip(ideal_order, discount)))
    return 1.0 if idcg <= 0 else dcg / idcg
