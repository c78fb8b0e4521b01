"""The select stage: the final model from the search's trials (automl/selection/)."""
from __future__ import annotations

from omegaconf import OmegaConf

from automl.selection import SelectSpec
from automl.selection.fallback import fit_fallback
from automl.selection.final import Selection, select_final
from automl.selection.rerank import RerankSpec
from automl.stages.env import RunEnv
from automl.stages.prepare import Prepared
from automl.stages.search import SearchOutcome

FINAL_WRITE_S = 2.0  # the least kept for the model, summary and a plain report after the refit


def select(env: RunEnv, prepared: Prepared, outcome: SearchOutcome) -> Selection:
    """Choose, build and calibrate the final model. The refit may use the reserve up to
    FINAL_WRITE_S before the deadline: the report sizes itself to the time left (it skips
    permutation importance when short)."""
    cfg, v = env.cfg, env.cfg.validation
    if outcome.fallback is not None:  # no trial finished (stages/search.py)
        return fit_fallback(outcome.ctx, outcome.leaderboard, outcome.fallback, cfg.select.final_model,
                            env.deadline - FINAL_WRITE_S)
    spec = RerankSpec(v.rerank_top, v.rerank_repeats, v.rerank_share * float(cfg.budget.time_limit_s))
    return select_final(outcome.ctx, outcome.leaderboard, outcome.rows, prepared.info, env.deadline - FINAL_WRITE_S,
                        env.out, env.so, ensemble=cfg.search.ensemble, rerank_spec=spec,
                        select=SelectSpec(**OmegaConf.to_container(cfg.select)))
