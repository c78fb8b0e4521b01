"""Ground truth for model-quality monitoring: labels that arrive later, joined with the endpoint's
captured predictions on the inference id.

``ground_truth=URL`` is a file, folder or prefix (any fsspec URL) of JSON Lines or CSV files with
the columns ``inference_id`` and ``label`` (other columns are ignored). A capture record holds one
request: its inference id as ``request_id`` (the client's ``X-Inference-Id`` header, else its
``X-Request-Id``, else the id the endpoint generated; returned in the ``X-Inference-Id`` header)
and one prediction per row. Row ``i`` (from 0) of a request
is joined with the label whose id is ``<inference_id>:<i>``; a one-row request also with the bare
``<inference_id>``. Labels may cover only part of the requests: rows without a label, and labels
without a captured row, are counted, never an error. When an id has several labels, the last one
read wins (files in name order, rows in file order). Ids are compared as text.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from automl.data.formats import detect_encoding, memory_blocks, table_format, text_layout
from automl.data.listing import list_files
from automl.data.reader import read_bytes
from automl.errors import DataError
from automl.monitor.sources import capture_records

log = logging.getLogger(__name__)

ID_COLUMN = "inference_id"
LABEL_COLUMN = "label"
WHAT = "ground_truth"
GROUND_TRUTH_FORMATS = ("jsonl", "csv", "delimited", "parquet")


def as_text(value: Any) -> Optional[str]:
    """An id or a label as text: integral floats (1.0, from a typed reader) become "1"; missing is None."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return str(value.item() if hasattr(value, "item") else value)


# ----------------------------------------------------------------------------- labels
def _parse_labels(raw: bytes, url: str) -> pd.DataFrame:
    """One ground-truth file as a frame, ids kept exactly as written (no number inference)."""
    fmt = table_format(url)
    if fmt not in GROUND_TRUTH_FORMATS:
        raise DataError(f"{WHAT}: {url} is a {fmt} file; give JSON Lines (.jsonl) or CSV (.csv) with the "
                        f"columns {ID_COLUMN},{LABEL_COLUMN}")
    if not raw.strip():
        return pd.DataFrame(columns=[ID_COLUMN, LABEL_COLUMN])
    try:
        if fmt == "jsonl":
            return pd.read_json(io.BytesIO(raw), lines=True, dtype=False, convert_dates=False)
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(raw))
        layout = text_layout(raw, detect_encoding(raw, memory_blocks(raw)), fmt)
        return pd.read_csv(io.BytesIO(raw), dtype=str, **layout.read_csv_options())
    except DataError as exc:
        raise DataError(f"{WHAT}: {url}: {exc.message}") from None
    except Exception as exc:  # parser errors come in many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{WHAT}: cannot parse {url} as {fmt}: {first}; give JSON Lines or CSV with the "
                        f"columns {ID_COLUMN},{LABEL_COLUMN}") from None


def read_labels(url: str, storage_options: Optional[Dict[str, Any]] = None,
                missing_ok: bool = False) -> Dict[str, Any]:
    """``{inference_id: label}`` from every ground-truth file at ``url`` (the last label of an id wins);
    ``missing_ok``: no files there yet is no labels yet (watch mode), not an error."""
    files = list_files(url, storage_options, what=WHAT, tables_only=True, allow_empty=missing_ok)
    labels: Dict[str, Any] = {}
    n_rows = 0
    for f in files:
        df = _parse_labels(read_bytes(f, storage_options, what=WHAT), f)
        missing = [c for c in (ID_COLUMN, LABEL_COLUMN) if c not in df.columns]
        if missing:
            raise DataError(f"{WHAT}: {f} has no column {', '.join(missing)} (its columns: "
                            f"{', '.join(map(str, df.columns)) or 'none'}); give {ID_COLUMN},{LABEL_COLUMN}")
        n_rows += len(df)
        for key, label in zip(df[ID_COLUMN].tolist(), df[LABEL_COLUMN].tolist()):
            key = as_text(key)
            if key is not None and as_text(label) is not None:
                labels[key] = label
    if n_rows > len(labels):
        log.info("%s: %d row(s) without an id or a label, or repeating an id (the last label wins)",
                 WHAT, n_rows - len(labels))
    return labels


# ----------------------------------------------------------------------------- captured predictions
@dataclass
class CapturedPredictions:
    """The captured rows that got a prediction: one join key list and one response object per row."""

    keys: List[List[str]] = field(default_factory=list)  # per row: the ids a label may carry
    predictions: List[Dict[str, Any]] = field(default_factory=list)
    trial_ids: List[str] = field(default_factory=list)
    timestamps: List[str] = field(default_factory=list)
    n_rejected: int = 0  # requests answered with an error (no predictions)


def read_captured(files: Sequence[str], storage_options: Optional[Dict[str, Any]] = None) -> CapturedPredictions:
    """Every answered row of the capture files ``files`` (records without predictions are counted)."""
    out = CapturedPredictions()
    bad = 0
    for url in files:
        records, unreadable = capture_records(read_bytes(url, storage_options, what="data"), "predictions")
        bad += unreadable
        for rec, preds in records:
            if rec.get("error") or not isinstance(preds, list) or not preds:
                out.n_rejected += 1
                continue
            base = as_text(rec.get("request_id"))  # the request's inference id (automl/serving/capture.py)
            for i, pred in enumerate(preds):
                keys = [f"{base}:{i}"] + ([base] if len(preds) == 1 else [])
                out.keys.append(keys if base else [])
                out.predictions.append(pred if isinstance(pred, dict) else {"predicted_label": pred})
                out.trial_ids.append(str(rec.get("trial_id", "")))
                out.timestamps.append(str(rec.get("timestamp", "")))
    if bad:
        log.warning("data: skipped %d capture line(s) that are not capture records", bad)
    return out


@dataclass
class Joined:
    """Captured predictions that found a label, and the counts of those that did not."""

    labels: List[Any]  # the ground-truth label of each joined row
    predictions: List[Dict[str, Any]]  # the captured response object of each joined row
    timestamps: List[str]
    trial_ids: List[str]
    n_captured: int  # captured rows with a prediction
    n_labels: int  # distinct ids in the ground truth
    n_rejected: int  # captured requests answered with an error

    @property
    def n_joined(self) -> int:
        return len(self.labels)

    @property
    def n_unlabelled(self) -> int:
        """Captured predictions without a label (yet)."""
        return self.n_captured - self.n_joined

    def counts(self) -> Dict[str, int]:
        return {"captured_predictions": self.n_captured, "labels": self.n_labels, "joined": self.n_joined,
                "predictions_without_label": self.n_unlabelled, "rejected_requests": self.n_rejected}


def join(captured: CapturedPredictions, labels: Dict[str, Any]) -> Joined:
    """Each captured row with the label of its id; rows without one are counted."""
    out = Joined([], [], [], [], n_captured=len(captured.predictions), n_labels=len(labels),
                 n_rejected=captured.n_rejected)
    for keys, pred, stamp, trial in zip(captured.keys, captured.predictions, captured.timestamps,
                                        captured.trial_ids):
        label = next((labels[k] for k in keys if k in labels), None)
        if label is None:
            continue
        out.labels.append(label)
        out.predictions.append(pred)
        out.timestamps.append(stamp)
        out.trial_ids.append(trial)
    return out


def join_ground_truth(files: Sequence[str], ground_truth: str, storage_options: Optional[Dict[str, Any]] = None,
                      missing_ok: bool = False) -> Joined:
    """The capture files ``files`` joined with the labels at ``ground_truth``."""
    labels = read_labels(ground_truth, storage_options, missing_ok)  # first: a bad ground truth fails before the capture is read
    return join(read_captured(files, storage_options), labels)
