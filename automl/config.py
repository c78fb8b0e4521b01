"""The config schema and how a run's config is composed.

Order, always the same: defaults (dataclasses below, registered in Hydra's ConfigStore) ->
YAML under ``conf/`` -> user overrides -> validation and cross-field checks.  Unknown keys are
errors because the schema is in struct mode.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from automl.errors import ConfigError
from automl.resources import project_dir  # noqa: F401 (re-exported: it lived here)

PROBLEM_TYPES = ("auto", "binary", "multiclass", "regression")
MODES = ("full", "candidates_only")


@dataclass
class DataConfig:
    path: str = "sklearn:digits"
    target: str = "target"
    test_path: Optional[str] = None
    # None: 0.25 for the built-in demo data, no held-out split otherwise.
    test_fraction: Optional[float] = None
    drop: List[str] = field(default_factory=list)
    sheet: Optional[str] = None
    storage_options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class BudgetConfig:
    max_trials: int = 250
    time_limit_s: float = 120.0
    # None: derived from the total (a third of it, at least 10 s).
    trial_time_limit_s: Optional[float] = None


@dataclass
class ValidationConfig:
    n_folds: int = 5
    # From large_data_rows rows on, trials use large_data_folds folds (each fold is costly there;
    # more trials beat more folds).
    large_data_rows: int = 20_000
    large_data_folds: int = 3
    cv_max_rows: int = 50_000
    holdout_fraction: float = 0.2
    # Trials fit on at most this many training rows per fold (a fixed stratified sample);
    # the final refit uses all rows. None: no cap.
    max_train_rows: Optional[int] = 250_000
    # From this many rows on, trials report after each fold and ASHA stops poor ones early.
    multi_fidelity_min_rows: int = 10_000
    # When the final model is a single configuration, the best rerank_top of them are
    # cross-validated on rerank_repeats more splits and ranked by the mean; it may take
    # rerank_share of budget.time_limit_s. rerank_top=0: off.
    rerank_top: int = 10
    rerank_repeats: int = 3
    rerank_share: float = 0.08


@dataclass
class SearchConfig:
    searcher: str = "optuna"  # optuna | random
    n_startup_trials: int = 8
    warm_start: bool = True
    ensemble: bool = True
    # auto: worker processes forked from this one (no Ray) on Linux when no ray.address is set and
    # the budget is under local_below_s; else on Ray. ray | local force one.
    executor: str = "auto"
    local_below_s: float = 30.0


@dataclass
class SelectConfig:
    """How the final model is built and gated (automl/selection/)."""
    final_model: str = "refit"  # refit: on all rows | bagged: mean of the k fold models | auto
    gate: str = "score"  # score: any better OOF score (McNemar for accuracy) | bootstrap: paired bootstrap over OOF rows
    gate_confidence: float = 0.95
    gate_resamples: int = 200
    stack: bool = False  # a second level on the ensemble members' OOF predictions, if it passes the gate


@dataclass
class RayConfig:
    address: Optional[str] = None
    num_cpus: Optional[int] = None
    cpus_per_trial: float = 1.0


@dataclass
class ProcessingConfig:
    numeric_impute: str = "median"  # median | mean | zero
    missing_indicator: bool = True
    scale: str = "none"  # none | standard | minmax | robust | quantile | log (signed log1p)
    categorical: str = "onehot"  # onehot | ordinal
    onehot_min_frequency: float = 0.005
    onehot_max_categories: int = 30
    text: str = "tfidf"  # tfidf | drop
    text_max_features: int = 300
    datetime: str = "parts"  # parts | drop
    high_cardinality: str = "target"  # target | frequency | none: for categoricals above the threshold
    high_cardinality_threshold: int = 30
    target_transform: str = "none"  # none | log (regression: signed log1p of the target)


@dataclass
class CandidateConfig:
    algorithm: str = MISSING
    # A file name under search_spaces/ (without .yaml) or a path; None: the algorithm's own.
    search_space: Optional[str] = None
    # An inline search space (same shape as a search_spaces file); overrides search_space.
    space: Optional[Dict[str, Any]] = None
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    enabled: bool = True
    # Skip this candidate when the training data has more rows than this.
    max_rows: Optional[int] = None
    # Only for these problem types (binary, multiclass, regression); None: all of them.
    problem_types: Optional[List[str]] = None
    description: str = ""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    problem_type: str = "auto"
    metric: str = "auto"
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    candidates: Dict[str, CandidateConfig] = field(default_factory=dict)
    search_spaces_dir: Optional[str] = None
    # A folder of candidate YAML files (a run's candidates/, maybe edited) replacing `candidates`.
    candidates_dir: Optional[str] = None
    seed: int = 0
    output_dir: Optional[str] = None
    mode: str = "full"
    verbose: bool = False
    # Continue the run in output_dir after a crash: finished trials are kept, budgets count them.
    resume: bool = False
    # Replace an earlier run in output_dir (built next to it, swapped in when complete). Without it
    # (and without resume) a fit into a folder that holds files stops before touching anything.
    overwrite: bool = False


_store = ConfigStore.instance()
_store.store(name="automl_schema", node=Config)


def _clean_hydra_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    detail = ""
    for line in text[1:]:
        line = line.strip()
        if line.startswith("Key '") or line.startswith("Could not") or "not in struct" in line:
            detail = line
            break
    return f"{first} ({detail})" if detail and detail not in first else first


def compose_config(overrides: List[str] | None = None, config_name: str = "config",
                   values: Dict[str, Any] | None = None) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra override strings, merge ``values`` (a nested
    dict, as the Python API passes them), then validate."""
    overrides = list(overrides or [])
    conf_dir = str(project_dir("conf"))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base=None):
            cfg = compose(config_name=config_name, overrides=overrides)
    except Exception as exc:  # hydra raises several types; turn all into one line
        msg = _clean_hydra_message(exc)
        raise ConfigError(
            f"invalid config override: {msg}. Valid top-level keys: "
            f"{', '.join(sorted(Config.__dataclass_fields__))}; see the README's config reference"
        ) from None
    finally:
        GlobalHydra.instance().clear()
    if values:
        try:
            # Free-form dict keys (storage options, new candidates) may be added from Python,
            # as `+key=value` does from the shell; the typed schema still rejects unknown keys.
            with open_dict(cfg.data.storage_options), open_dict(cfg.candidates):
                cfg = OmegaConf.merge(cfg, OmegaConf.create(values))
        except Exception as exc:
            raise ConfigError(
                f"invalid config value: {_clean_hydra_message(exc)}. Valid top-level keys: "
                f"{', '.join(sorted(Config.__dataclass_fields__))}; see the README's config reference"
            ) from None
    validate_config(cfg)
    return cfg


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
    for key in ("n_folds", "large_data_folds"):
        if cfg.validation[key] < 2:
            raise ConfigError(f"validation.{key} must be at least 2; got {cfg.validation[key]}")
    for key in ("rerank_top", "rerank_repeats"):
        if cfg.validation[key] < 0:
            raise ConfigError(f"validation.{key} must be 0 or more; got {cfg.validation[key]}")
    if not 0 <= cfg.validation.rerank_share < 1:
        raise ConfigError(f"validation.rerank_share must be in [0, 1); got {cfg.validation.rerank_share}")
    if cfg.search.executor not in ("auto", "ray", "local"):
        raise ConfigError(f"search.executor must be 'auto', 'ray' or 'local'; got '{cfg.search.executor}'")
    if cfg.search.executor == "local" and cfg.ray.address:
        raise ConfigError("search.executor=local runs on this machine without Ray, but "
                          f"ray.address={cfg.ray.address} asks for a cluster; drop one of them")
    if cfg.search.searcher not in ("optuna", "random"):
        raise ConfigError(f"search.searcher must be 'optuna' or 'random'; got '{cfg.search.searcher}'")
    _check_select(cfg)
    from automl.metrics import check_metric_name

    check_metric_name(cfg.metric, cfg.problem_type)
    from automl.candidates.algorithms import ALGORITHMS

    for name, cand in cfg.candidates.items():
        if cand.algorithm not in ALGORITHMS and ":" not in cand.algorithm:  # module:factory is custom
            raise ConfigError(
                f"candidates.{name}.algorithm '{cand.algorithm}' is unknown; "
                f"valid algorithms: {', '.join(sorted(ALGORITHMS))}"
            )


def _check_select(cfg: DictConfig) -> None:
    from automl.selection import FINAL_MODEL_KINDS, GATES

    sel = cfg.select
    if sel.final_model not in FINAL_MODEL_KINDS:
        raise ConfigError(f"select.final_model must be one of {', '.join(FINAL_MODEL_KINDS)}; got '{sel.final_model}'")
    if sel.gate not in GATES:
        raise ConfigError(f"select.gate must be one of {', '.join(GATES)}; got '{sel.gate}'")
    if not 0.5 <= sel.gate_confidence < 1:
        raise ConfigError(f"select.gate_confidence must be in [0.5, 1); got {sel.gate_confidence}")
    if sel.gate_resamples < 10:
        raise ConfigError(f"select.gate_resamples must be at least 10; got {sel.gate_resamples}")


def expand_sweep(overrides: List[str]) -> List[List[str]]:
    """Expand Hydra sweep syntax (``metric=accuracy,f1_macro``, ``range(…)``) into runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    except Exception as exc:
        raise ConfigError(f"cannot parse overrides: {_clean_hydra_message(exc)}") from None
    axes = []
    for ov in parsed:
        key = ov.get_key_element()
        if ov.is_sweep_override():
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([f"{key}={ov.get_value_element_as_str()}"])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
