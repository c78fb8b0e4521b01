"""Checks of a composed `automl fit` config that a type schema cannot express.

They run in ``compose_config``, before any data is read: value sets, ranges, cross-field rules,
the metric's name and every candidate (algorithm, problem types, search space, processing).
"""
from __future__ import annotations

from omegaconf import DictConfig

from automl.errors import ConfigError

PROBLEM_TYPES = ("auto", "binary", "multiclass", "regression")
MODES = ("full", "candidates_only")
SCALE_MODES = ("single", "distributed", "auto")  # scale.mode


def validate_config(cfg: DictConfig) -> None:
    """Cross-field checks that a type schema cannot express."""
    if cfg.problem_type not in PROBLEM_TYPES:
        raise ConfigError(
            f"problem_type must be one of {', '.join(PROBLEM_TYPES)}; got '{cfg.problem_type}'. "
            "Fix: problem_type=auto lets automl infer it"
        )
    if cfg.get("resume") and not cfg.output_dir:
        raise ConfigError("resume=true needs output_dir=<the folder of the run to continue>; got no output_dir")
    if cfg.get("resume") and cfg.get("overwrite"):
        raise ConfigError("resume=true continues the run in output_dir and overwrite=true replaces it; pass only one")
    if cfg.mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got '{cfg.mode}'")
    if cfg.budget.max_trials < 1:
        raise ConfigError(f"budget.max_trials must be at least 1; got {cfg.budget.max_trials}")
    if cfg.budget.time_limit_s <= 0:
        raise ConfigError(f"budget.time_limit_s must be positive; got {cfg.budget.time_limit_s}")
    if cfg.data.test_fraction is not None and not 0 <= cfg.data.test_fraction < 1:
        raise ConfigError(f"data.test_fraction must be in [0, 1); got {cfg.data.test_fraction}")
    if cfg.sweep.parallel < 1:
        raise ConfigError(f"sweep.parallel must be at least 1 (sweep points run at once); got {cfg.sweep.parallel}")
    for key in ("quality_margin", "quality_relative_margin"):  # model-quality constraints (monitor/quality.py)
        if not cfg.monitor[key] >= 0:
            raise ConfigError(f"monitor.{key} must be a number >= 0; got {cfg.monitor[key]}")
    _check_validation(cfg)
    _check_scale(cfg)
    _check_search(cfg)
    _check_select(cfg)
    _check_explain(cfg)
    from automl.tracking import check_tracking  # tracking=mlflow without mlflow: the install line

    check_tracking(cfg.get("tracking"))
    _check_choices(cfg)
    from automl.metrics import check_metric_name

    check_metric_name(cfg.metric, cfg.problem_type)
    from automl.candidates.check import check_candidates

    check_candidates(cfg.candidates, cfg.get("search_spaces_dir"), cfg.problem_type)


def _check_validation(cfg: DictConfig) -> None:
    for key in ("n_folds", "large_data_folds"):
        if cfg.validation[key] < 2:
            raise ConfigError(f"validation.{key} must be at least 2; got {cfg.validation[key]}")
    for key in ("rerank_top", "rerank_repeats"):
        if cfg.validation[key] < 0:
            raise ConfigError(f"validation.{key} must be 0 or more; got {cfg.validation[key]}")
    if not 0 <= cfg.validation.rerank_share < 1:
        raise ConfigError(f"validation.rerank_share must be in [0, 1); got {cfg.validation.rerank_share}")
    _check_row_roles(cfg)


def _check_row_roles(cfg: DictConfig) -> None:
    """data.weight_column / data.weights and validation.group_column / time_column (docs/validation.md)."""
    d, v = cfg.data, cfg.validation
    if d.get("weights") not in (None, "balanced"):
        raise ConfigError(f"data.weights must be 'balanced' or null; got '{d.weights}'. For per-row weights use "
                          "data.weight_column=COL")
    if d.get("weights") and d.get("weight_column"):
        raise ConfigError("data.weights=balanced and data.weight_column both set the sample weights; pass only one")
    if d.get("weights") and cfg.problem_type == "regression":
        raise ConfigError("data.weights=balanced weighs classes, but problem_type=regression; use "
                          "data.weight_column=COL, or drop data.weights")
    if v.get("group_column") and v.get("time_column"):
        raise ConfigError("validation.group_column and validation.time_column are both set; pass only one "
                          "(groups: group-disjoint folds; time: forward-chaining folds)")
    for key, col in (("data.weight_column", d.get("weight_column")), ("validation.group_column", v.get("group_column")),
                     ("validation.time_column", v.get("time_column"))):
        if col is not None and str(col) == str(d.target):
            raise ConfigError(f"{key} '{col}' is the target (data.target); name another column")


def _check_explain(cfg: DictConfig) -> None:
    """explain.facet / explain.facet_positive (docs/bias.md); the column itself is checked on the table."""
    e = cfg.get("explain") or {}
    if e.get("facet_positive") is not None and not e.get("facet"):
        raise ConfigError("explain.facet_positive is set without explain.facet; name the facet column too, "
                          "e.g. explain.facet=sex")
    if e.get("facet") and str(e.get("facet")) == str(cfg.data.target):
        raise ConfigError(f"explain.facet '{e.get('facet')}' is the target (data.target); name the column whose "
                          "groups you want to compare, e.g. explain.facet=sex")
    if e.get("facet_positive") is not None and cfg.problem_type == "regression":
        raise ConfigError("explain.facet_positive is for classification; a regression's bias metrics compare mean "
                          "targets and predictions: drop the key")


def _check_scale(cfg: DictConfig) -> None:
    """scale.* (the distributed mode, docs/distributed.md): value sets, ranges, what it supports."""
    s = cfg.scale
    if s.mode not in SCALE_MODES:
        raise ConfigError(f"scale.mode must be one of {', '.join(SCALE_MODES)}; got '{s.mode}'")
    for key in ("num_workers", "sample_rows", "max_rounds"):
        if int(s[key]) < 1:
            raise ConfigError(f"scale.{key} must be at least 1; got {s[key]}")
    if float(s.cpus_per_worker) <= 0:
        raise ConfigError(f"scale.cpus_per_worker must be positive; got {s.cpus_per_worker}")
    if s.mode != "single" and cfg.mode != "full":
        raise ConfigError(f"scale.mode={s.mode} runs mode=full only; got mode={cfg.mode}. Use scale.mode=single")
    if s.mode != "single" and (cfg.validation.get("group_column") or cfg.validation.get("time_column")
                               or cfg.data.get("weight_column") or cfg.data.get("weights")):
        raise ConfigError(f"scale.mode={s.mode} does not support validation.group_column, validation.time_column "
                          "or sample weights yet; use scale.mode=single for them")


def _check_search(cfg: DictConfig) -> None:
    if cfg.search.executor not in ("auto", "ray", "local"):
        raise ConfigError(f"search.executor must be 'auto', 'ray' or 'local'; got '{cfg.search.executor}'")
    if cfg.search.executor == "local" and cfg.ray.address:
        raise ConfigError("search.executor=local runs on this machine without Ray, but "
                          f"ray.address={cfg.ray.address} asks for a cluster; drop one of them")
    if cfg.search.executor == "local":
        from automl.search.local import can_fork

        if not can_fork():
            raise ConfigError("search.executor=local needs the fork start method, which this platform lacks; "
                              "use search.executor=ray")
    if cfg.search.searcher not in ("optuna", "random"):
        raise ConfigError(f"search.searcher must be 'optuna' or 'random'; got '{cfg.search.searcher}'")


def _check_select(cfg: DictConfig) -> None:
    from automl.selection import CALIBRATIONS, FINAL_MODEL_KINDS, GATES

    sel = cfg.select
    if sel.final_model not in FINAL_MODEL_KINDS:
        raise ConfigError(f"select.final_model must be one of {', '.join(FINAL_MODEL_KINDS)}; got '{sel.final_model}'")
    if sel.gate not in GATES:
        raise ConfigError(f"select.gate must be one of {', '.join(GATES)}; got '{sel.gate}'")
    if not 0.5 <= sel.gate_confidence < 1:
        raise ConfigError(f"select.gate_confidence must be in [0.5, 1); got {sel.gate_confidence}")
    if sel.gate_resamples < 10:
        raise ConfigError(f"select.gate_resamples must be at least 10; got {sel.gate_resamples}")
    if sel.calibration not in CALIBRATIONS:
        raise ConfigError(f"select.calibration must be one of {', '.join(CALIBRATIONS)}; got '{sel.calibration}'")


def _check_choices(cfg: DictConfig) -> None:
    """Feature, candidate and constraint choices (issue 18): what can be checked before reading data."""
    from automl.candidates.generate import check_filter
    from automl.data.columns import check_feature_keys

    check_feature_keys(cfg.data.get("features"), list(cfg.data.get("exclude") or []), dict(cfg.data.get("types") or {}))
    if not cfg.get("candidates_dir"):  # a candidates_dir is read and checked at the start of the fit (runner.fit)
        check_filter(cfg.candidates, cfg.get("candidates_include"), cfg.get("candidates_exclude"))
    for key in ("max_latency_ms", "max_size_mb"):
        value = cfg.select.get(key)
        if value is not None and not value > 0:
            raise ConfigError(f"select.{key} must be a positive number; got {value}. Fix: a bound above 0, or null")

