"""Model monitoring: a data-quality baseline written at fit time, and `automl monitor` checks of
later batches or captured endpoint traffic against it (the open counterpart of SageMaker Model Monitor).

    stats, constraints = build_baseline(df, column_types)   # column_types from infer_column_types
    result = check_batch(batch_df, stats, constraints)       # result.violations
"""
from automl.monitor.baseline import build_baseline, write_baseline
from automl.monitor.checks import CHECKS, CheckResult, Violation, check_batch

__all__ = ["build_baseline", "write_baseline", "check_batch", "CheckResult", "Violation", "CHECKS"]
