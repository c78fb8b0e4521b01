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
    path: str = "sklearn:digits"  # table to learn from: a path or any fsspec URL (sklearn:NAME: a demo set)
    target: str = "target"  # the target column
    test_path: Optional[str] = None  # a held-out test table (summary.json then carries test_score)
    # None: 0.25 for the built-in demo data, no held-out split otherwise.
    test_fraction: Optional[float] = None
    drop: List[str] = field(default_factory=list)  # columns to ignore
    sheet: Optional[str] = None  # Excel sheet name (null: the first sheet)
    storage_options: Dict[str, Any] = field(default_factory=dict)  # fsspec options (e.g. an S3 endpoint): +data.storage_options.K=V
    weight_column: Optional[str] = None  # a column of per-row sample weights (never a feature; docs/validation.md)
    weights: Optional[str] = None  # null | balanced: class-balanced sample weights (classification only)
    features: Optional[List[str]] = None  # only these columns are features (null: all usable ones); docs/constraints.md
    exclude: List[str] = field(default_factory=list)  # columns that are not features (kept in the data)
    types: Dict[str, str] = field(default_factory=dict)  # {column: numeric|categorical|boolean|text|datetime}: overrides inference


@dataclass
class BudgetConfig:
    max_trials: int = 250  # most trials the search runs
    time_limit_s: float = 120.0  # wall-clock limit of the whole run, counted from process start
    # None: derived from the total (a third of it, at least 10 s).
    trial_time_limit_s: Optional[float] = None


@dataclass
class ValidationConfig:
    n_folds: int = 5  # cross-validation folds (up to cv_max_rows rows)
    # From large_data_rows rows on, trials use large_data_folds folds (each fold is costly there;
    # more trials beat more folds).
    large_data_rows: int = 20_000
    large_data_folds: int = 3  # folds from large_data_rows rows on
    cv_max_rows: int = 50_000  # above this many rows a holdout split replaces cross-validation
    holdout_fraction: float = 0.2  # size of that holdout split
    # Trials fit on at most this many training rows per fold (a fixed stratified sample);
    # the final refit uses all rows. None: no cap.
    max_train_rows: Optional[int] = 250_000
    group_column: Optional[str] = None  # group-disjoint folds and test split by this column (never a feature)
    time_column: Optional[str] = None  # forward-chaining folds over this column; the test split is the last period
    # From this many rows on, trials report after each fold and ASHA stops poor ones early.
    multi_fidelity_min_rows: int = 10_000
    # When the final model is a single configuration, the best rerank_top of them are
    # cross-validated on rerank_repeats more splits and ranked by the mean; it may take
    # rerank_share of budget.time_limit_s. rerank_top=0: off.
    rerank_top: int = 10
    rerank_repeats: int = 3  # more k-fold splits for each re-scored configuration
    rerank_share: float = 0.08  # share of budget.time_limit_s the re-rank may take at most


@dataclass
class SearchConfig:
    searcher: str = "optuna"  # optuna | random
    n_startup_trials: int = 8  # random trials before TPE models the space
    warm_start: bool = True  # evaluate each search space's portfolio first
    ensemble: bool = True  # greedy ensemble selection over the trials' out-of-fold predictions
    # auto: worker processes forked from this one (no Ray) on Linux when no ray.address is set and
    # the budget is under local_below_s; else on Ray. ray | local force one.
    executor: str = "auto"
    local_below_s: float = 30.0  # executor=auto searches without Ray below this budget (seconds)


@dataclass
class SelectConfig:
    """How the final model is built and gated (automl/selection/)."""
    final_model: str = "refit"  # refit: on all rows | bagged: mean of the k fold models | auto
    gate: str = "score"  # score: any better OOF score (McNemar for accuracy) | bootstrap: paired bootstrap over OOF rows
    gate_confidence: float = 0.95  # gate=bootstrap: the gain's lower bound at this confidence must be > 0
    gate_resamples: int = 200  # bootstrap resamples of the out-of-fold rows
    stack: bool = False  # a second level on the ensemble members' OOF predictions, if it passes the gate
    calibration: str = "auto"  # auto | temperature | isotonic | none: probabilities calibrated out of fold (labels unchanged)
    max_latency_ms: Optional[float] = None  # the best model (ensemble or trial) whose measured single-row latency is under this
    max_size_mb: Optional[float] = None  # ... and whose measured model size is under this (MB = 10^6 bytes)


@dataclass
class RayConfig:
    address: Optional[str] = None  # null: a local Ray on this machine's cores; HOST:PORT or auto joins a cluster
    num_cpus: Optional[int] = None  # CPUs of the local Ray or forked workers (null: all cores)
    cpus_per_trial: float = 1.0  # CPUs reserved per trial


@dataclass
class ProcessingConfig:
    numeric_impute: str = "median"  # median | mean | zero
    missing_indicator: bool = True  # add a was-missing column per numeric column with missing values
    scale: str = "none"  # none | standard | minmax | robust | quantile | log (signed log1p) | spline (linear term + B-spline basis)
    categorical: str = "onehot"  # onehot | ordinal
    onehot_min_frequency: float = 0.005  # categories rarer than this share of rows are grouped into one
    onehot_max_categories: int = 30  # most one-hot columns per categorical
    text: str = "tfidf"  # tfidf | drop
    text_max_features: int = 300  # TF-IDF vocabulary size per text column
    datetime: str = "parts"  # parts | drop
    high_cardinality: str = "target"  # target | frequency | none: for categoricals above the threshold
    high_cardinality_threshold: int = 30  # levels above which a categorical counts as high-cardinality
    target_transform: str = "none"  # none | log (regression: signed log1p of the target)


@dataclass
class CandidateConfig:
    algorithm: str = MISSING  # a registered algorithm (xgboost, linear, ...) or module:factory (required)
    # A file name under search_spaces/ (without .yaml) or a path; None: the algorithm's own.
    search_space: Optional[str] = None
    # An inline search space (same shape as a search_spaces file); overrides search_space.
    space: Optional[Dict[str, Any]] = None
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    enabled: bool = True  # false leaves the candidate out
    # Skip this candidate when the training data has more rows than this.
    max_rows: Optional[int] = None
    # Only for these problem types (binary, multiclass, regression); None: all of them.
    problem_types: Optional[List[str]] = None
    description: str = ""  # one line shown in the notebooks and the report


@dataclass
class TrackingConfig:
    """Experiment tracking after each fit (automl/tracking/; `tracking=mlflow` picks conf/tracking/mlflow.yaml)."""
    backend: str = "none"  # none | mlflow: a parent run per fit, a nested run per trial, the model as a pyfunc
    uri: Optional[str] = None  # MLflow tracking URI (e.g. sqlite:///mlflow.db); null: MLFLOW_TRACKING_URI or ./mlruns
    experiment: str = "automl"  # MLflow experiment name (created if missing)


@dataclass
class ExplainConfig:
    """Bias metrics of a facet column, in bias.json and report.html (docs/bias.md)."""
    facet: Optional[str] = None  # a column whose groups are compared (CI, DPL, DPPL); it stays a feature unless data.exclude names it
    facet_positive: Optional[str] = None  # the favourable class (null: a binary problem's positive class; required for multiclass)


@dataclass
class SweepConfig:
    """`automl fit -m` sweeps (docs/cli.md)."""
    parallel: int = 1  # sweep points run at once: processes here, or Ray tasks when ray.address is set (1: in turn, in this process)


@dataclass
class ScaleConfig:
    """Beyond one machine's memory (automl/distributed/, docs/distributed.md)."""
    mode: str = "single"  # single | distributed: data.path read as a Ray Dataset, XGBoost and LightGBM as Ray Train jobs | auto
    auto_bytes: int = 5_000_000_000  # mode=auto: distributed when data.path's files hold more bytes than this
    num_workers: int = 2  # Ray Train workers per distributed XGBoost or LightGBM trial
    cpus_per_worker: float = 1.0  # CPUs each of those workers reserves
    sample_rows: int = 100_000  # the sample for column types, the baseline and the single-worker candidates
    max_rounds: int = 300  # most boosting rounds of a distributed trial (it stops early on the holdout)
    memory_per_trial_mb: Optional[float] = None  # memory plan: MB one trial may use (null: available memory / parallel trials; docs/scale.md)
    memory_sample_min_rows: int = 1000  # memory plan: a candidate over the limit trains on a sample down to this many rows per fold, else skipped (0: skip)


@dataclass
class MonitorFitConfig:
    """The model-quality constraints written at fit time into baseline/constraints.json (docs/model_quality.md)."""
    quality_margin: float = 0.05  # higher-is-better metrics (auc, accuracy, f1, r2, ...): threshold = out-of-fold value - this
    quality_relative_margin: float = 0.2  # logloss, mse, rmse, mae: threshold = out-of-fold value * (1 + this)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    problem_type: str = "auto"  # auto | binary | multiclass | regression
    metric: str = "auto"  # auto: the problem type's default (docs/configuration.md)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)  # -m sweeps: how many points run at once
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # scale.mode=distributed: Ray Data + Ray Train (docs/distributed.md)
    candidates: Dict[str, CandidateConfig] = field(default_factory=dict)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # experiment tracking (docs/ecosystem.md)
    monitor: MonitorFitConfig = field(default_factory=MonitorFitConfig)  # model-quality constraints for `automl monitor`
    explain: ExplainConfig = field(default_factory=ExplainConfig)  # explain.facet=COLUMN: bias metrics (docs/bias.md)
    search_spaces_dir: Optional[str] = None  # a folder of search-space YAML files (null: search_spaces/)
    # A folder of candidate YAML files (a run's candidates/, maybe edited) replacing `candidates`.
    candidates_dir: Optional[str] = None
    # `candidates.include=[...]` / `candidates.exclude=[...]` (candidate or algorithm names) land here.
    candidates_include: List[str] = field(default_factory=list)
    candidates_exclude: List[str] = field(default_factory=list)  # candidates.exclude=[...]: leave these out (candidate or algorithm names)
    seed: int = 0  # one seed feeds splits, models and the searcher
    output_dir: Optional[str] = None  # the run folder, any fsspec URL (null: outputs/<date>/<time>)
    mode: str = "full"  # full | candidates_only (stop after the candidates and notebooks)
    verbose: bool = False  # show tracebacks on errors
    report: bool = True  # write report.html (false: skip it, e.g. for many quick fits from Python)
    notebooks: bool = True  # write data_exploration.ipynb and candidate_definitions.ipynb
    # Continue the run in output_dir after a crash: finished trials are kept, budgets count them.
    resume: bool = False
    # Replace an earlier run in output_dir (built next to it, swapped in when complete). Without it
    # (and without resume) a fit into a folder that holds files stops before touching anything.
    overwrite: bool = False


_store = ConfigStore.instance()
_store.store(name="automl_schema", node=Config)
