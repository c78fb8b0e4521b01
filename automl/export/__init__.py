"""`automl export`: a run's model as a file that runs without automl.

``automl export run_dir=DIR [trial=ID] format=onnx output=model.onnx`` writes the whole pipeline,
processing included, as one ONNX graph (automl/export/onnx_graph.py, onnx_model.py; needs
``pip install 'automl[onnx]'``). Before the file is written, the graph runs in onnxruntime on
training rows of the run and must agree with automl's own predictions; the file is written under a
temporary name and moved into place. See docs/ecosystem.md.
"""
from __future__ import annotations

import importlib.util
import io
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from automl import artifacts as art
from automl.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

ONNX_PACKAGES = ("onnx", "skl2onnx", "onnxruntime")
CHECK_ROWS = 200  # training rows the graph is checked on before it is written
PROBA_TOLERANCE = 1e-4  # largest probability difference accepted (the estimators run in float32)
VALUE_TOLERANCE = 1e-4  # regression: relative to 1 + |value|


@dataclass
class ExportResult:
    output: str
    size_bytes: int
    inputs: List[str]
    outputs: List[str]
    checked_rows: int
    max_difference: Optional[float]


def cmd_export(args: List[str]) -> int:
    from automl.config.commands import compose_command

    cfg = compose_command("export", args)  # typed and checked: ExportConfig
    result = export_run(cfg.run_dir, cfg.output, trial=cfg.trial, fmt=cfg.format, overwrite=cfg.overwrite,
                        allow_pickle=cfg.allow_pickle)
    checked = (f"; agrees with the model on {result.checked_rows} training rows (largest difference "
               f"{result.max_difference:.1e})" if result.checked_rows else "")
    shown = ", ".join(result.inputs[:5]) + (f", … ({len(result.inputs)} columns)" if len(result.inputs) > 5 else "")
    print(f"wrote {result.output} ({result.size_bytes} bytes): inputs {shown}; outputs {', '.join(result.outputs)}"
          f"{checked}")
    return 0


def _require_onnx() -> None:
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(f"format=onnx needs {', '.join(missing)}, which is not installed; "
                          "pip install 'automl[onnx]'")


def export_run(run_dir: str, output: str, trial: Optional[str] = None, fmt: str = "onnx", overwrite: bool = False,
               allow_pickle: bool = False, storage_options: Optional[Dict[str, Any]] = None) -> ExportResult:
    """Write the model of ``run_dir`` (or of ``trial``) to ``output`` as ONNX."""
    if fmt != "onnx":
        raise ConfigError(f"format must be onnx; got {fmt!r}")
    _require_onnx()
    so = storage_options or {}
    if art.exists(output, so) and not overwrite:
        raise ConfigError(f"output {output} already exists; pass overwrite=true to replace it, or choose another path")
    from automl.export.onnx_model import build_onnx
    from automl.rundir.run import Run

    run = Run(run_dir, so, allow_pickle=allow_pickle)
    bundle = run.trial_model(trial)
    model = build_onnx(bundle)
    rows = training_rows(run, list(bundle.feature_columns))
    difference = check_parity(model, bundle, rows) if rows is not None else None
    data = model.SerializeToString()
    with art.atomic_open(output, "wb", so) as fh:
        fh.write(data)
    log.info("exported trial %s (%s) to %s", bundle.trial_id, bundle.candidate, output)
    return ExportResult(output, len(data), [i.name for i in model.graph.input], [o.name for o in model.graph.output],
                        0 if rows is None else len(rows), difference)


def training_rows(run: Any, features: List[str], n: int = CHECK_ROWS) -> Optional[pd.DataFrame]:
    """Up to ``n`` training rows of the run (features only), checked against its manifest."""
    from automl.rundir.layout import TRAIN_DATA_FILE
    from automl.rundir.manifest import read_manifest, read_verified

    manifest = read_manifest(run.run_dir, run.storage_options)
    if TRAIN_DATA_FILE not in manifest["files"]:
        log.warning("run %s keeps no %s: the ONNX graph is written without a check against the model",
                    run.run_dir, TRAIN_DATA_FILE)
        return None
    raw = read_verified(run.run_dir, TRAIN_DATA_FILE, run.storage_options, manifest)
    frame = pd.read_parquet(io.BytesIO(raw), columns=features)
    return frame.sample(min(n, len(frame)), random_state=0) if len(frame) > n else frame


def run_onnx(model: Any, frame: pd.DataFrame) -> Dict[str, np.ndarray]:
    """The graph's outputs on the rows of ``frame`` (onnxruntime, CPU)."""
    import onnxruntime as ort

    from automl.export.onnx_model import onnx_feed

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, onnx_feed(frame, model))))


def check_parity(model: Any, bundle: Any, rows: pd.DataFrame) -> float:
    """The largest difference between the graph's and automl's predictions on ``rows``; an
    ExportError when they disagree (a conversion defect, not a user error)."""
    got, raw = run_onnx(model, rows), bundle.raw_matrix(rows)
    if bundle.problem_type == "regression":
        diff = float(np.max(np.abs(got["prediction"] - raw) / (1.0 + np.abs(raw)), initial=0.0))
        bad = diff > VALUE_TOLERANCE
    else:
        diff = float(np.max(np.abs(got["probabilities"] - bundle.calibrate(raw)), initial=0.0))
        labels = np.asarray(bundle.labels_from_matrix(raw)).astype(str)
        disagree = int(np.sum(got["label"].astype(str) != labels))
        bad = diff > PROBA_TOLERANCE or disagree > max(1, len(rows) // 100)  # float32 ties may flip a label
    if bad:
        raise ExportError(f"the ONNX graph of trial {bundle.trial_id} ({bundle.candidate}) disagrees with the model on "
                          f"the run's training rows (largest difference {diff:.2e}); not written. Please report "
                          "it, and export another trial meanwhile (trial=ID)")
    return diff
