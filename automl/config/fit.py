"""The `automl fit` schema: dataclasses registered in Hydra's ConfigStore as ``automl_schema``.

``conf/config.yaml`` composes on top of it; unknown keys are errors because the schema is in
struct mode. One-line docs of every key: docs/configuration.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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
