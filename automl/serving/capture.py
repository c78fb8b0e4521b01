"""Data capture: a sample of the endpoint's requests and responses, as JSON Lines on any fsspec URL.

The format is fixed (``automl monitor`` reads it): files
``<destination>/capture-<YYYYmmddTHHMMSS>-<pid>-<seq>.jsonl``, one JSON object per request::

    {"request_id": str, "timestamp": ISO-8601 str, "trial_id": str, "content_type": str,
     "instances": [{feature_column: value, ...}, ...], "predictions": [response object, ...]}

``request_id`` is the request's inference id: the client's ``X-Inference-Id`` header, else its
``X-Request-Id``, else one the endpoint generated; the answer returns it in both headers. Ground
truth joins on it (row ``i`` of a request: ``<id>:<i>``; automl/monitor/groundtruth.py).

Records are buffered in memory and written by a background thread, one whole file at a time:
a file is written when it holds ``max_records`` records or ``max_file_mb`` megabytes (a record
larger than that gets a file of its own), when ``rotate_s`` seconds have passed since its first
record, and at shutdown. A file therefore appears complete or not at all (on a local disk it is
written under a dot-name and renamed; object stores write whole objects). Capture stops, with one
logged warning, before a file would take the capture files at the destination (those there at
start-up plus those written since) over ``max_total_mb``; requests are still answered. Records
that queue faster than they can be written (over ``MAX_QUEUED`` waiting) are dropped and counted.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import queue
import random
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import fsspec

from automl.errors import ConfigError
from automl.redact import redact_text
from automl.rundir.layout import capture_file_name
from automl.serving.codec import json_value

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000  # records waiting for the writer thread; more are dropped (and counted)
MB = 1024 * 1024


class DataCapture:
    """Samples requests and writes them as JSON Lines files from a background thread."""

    def __init__(self, destination: str, sampling_percentage: float = 100.0, trial_id: str = "",
                 max_records: int = 1000, rotate_s: float = 60.0,
                 storage_options: Optional[Dict[str, Any]] = None, seed: Optional[int] = None,
                 max_file_mb: float = 16.0, max_total_mb: float = 1024.0):
        if not destination:
            raise ConfigError("capture.enabled=true needs capture.destination=URL (a folder or prefix, "
                              "e.g. capture.destination=s3://bucket/capture)")
        try:
            pct = float(sampling_percentage)
        except (TypeError, ValueError):
            pct = -1.0
        if not 0 <= pct <= 100:
            raise ConfigError(f"capture.sampling_percentage must be a number from 0 to 100; got {sampling_percentage!r}")
        if int(max_records) < 1 or float(rotate_s) <= 0:
            raise ConfigError(f"capture.max_records must be >= 1 and capture.rotate_s > 0; "
                              f"got {max_records!r} and {rotate_s!r}")
        try:
            file_mb, total_mb = float(max_file_mb), float(max_total_mb)
        except (TypeError, ValueError):
            file_mb = total_mb = -1.0
        if not (file_mb > 0 and total_mb > 0):
            raise ConfigError(f"capture.max_file_mb and capture.max_total_mb must be numbers > 0; "
                              f"got {max_file_mb!r} and {max_total_mb!r}")
        self.max_file_bytes = int(file_mb * MB)
        self.max_total_bytes = int(total_mb * MB)
        self.max_total_mb = total_mb
        self.destination = destination.rstrip("/")
        self.fraction = pct / 100.0
        self.trial_id = trial_id
        self.max_records = int(max_records)
        self.rotate_s = float(rotate_s)
        self.storage_options = storage_options or {}
        self.fs, self.root = fsspec.core.url_to_fs(self.destination, **self.storage_options)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else [self.fs.protocol])
        self.random = random.Random(seed)
        self.files_written: List[str] = []
        self.records_written = 0
        self.records_dropped = 0
        self.stopped = False  # max_total_mb reached
        self.total_bytes = self._bytes_at_destination()
        self._queue: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue(maxsize=MAX_QUEUED)
        self._seq = 0
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # -- the request path ----------------------------------------------------------------------

    def _bytes_at_destination(self) -> int:
        """The size of the capture files already at the destination (0 when it cannot be listed)."""
        from automl.rundir.layout import is_capture_file_name

        try:
            entries = self.fs.ls(self.root, detail=True)
        except (FileNotFoundError, OSError, ValueError):
            return 0
        return sum(int(e.get("size") or 0) for e in entries
                   if is_capture_file_name(str(e.get("name", "")).rsplit("/", 1)[-1]))

    def sampled(self) -> bool:
        if self.stopped:
            return False
        return self.fraction >= 1.0 or (self.fraction > 0 and self.random.random() < self.fraction)

    def record(self, content_type: str, instances: List[Dict[str, Any]], predictions: List[Dict[str, Any]],
               request_id: Optional[str] = None, error: Optional[str] = None) -> None:
        """Queue one request's record (cheap; the writer thread does the I/O). A rejected request
        has ``error`` set and no predictions."""
        self._ensure_thread()
        rec = {
            "request_id": request_id or uuid.uuid4().hex,
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
            "trial_id": self.trial_id, "content_type": content_type,
            "instances": instances, "predictions": predictions,
        }
        if error:
            rec["error"] = error
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            self.records_dropped += 1
            if self.records_dropped == 1:
                log.warning("data capture: records arrive faster than they are written; dropping (and counting) "
                            "them while %d wait", MAX_QUEUED)

    # -- the writer thread ------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="automl-capture", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        buffer: List[bytes] = []
        size = 0
        opened: Optional[float] = None
        started = ""
        while True:
            timeout = None if opened is None else max(0.0, opened + self.rotate_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = {}
            if item is None:  # shutdown
                if buffer:
                    self._write(started, buffer)
                return
            line = _encode(item) if item else None
            if line is not None and buffer and size + len(line) > self.max_file_bytes:
                self._write(started, buffer)  # the file is full: this record starts the next one
                buffer, size, opened = [], 0, None
            if line is not None:
                if opened is None:
                    opened = time.monotonic()
                    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
                buffer.append(line)
                size += len(line)
            if buffer and (len(buffer) >= self.max_records or size >= self.max_file_bytes
                           or time.monotonic() >= (opened or 0) + self.rotate_s):
                self._write(started, buffer)
                buffer, size, opened = [], 0, None

    def _write(self, started: str, lines: List[bytes]) -> None:
        data = b"".join(lines)
        if self.stopped:
            return
        if self.total_bytes + len(data) > self.max_total_bytes:
            self.stopped = True
            log.warning("data capture stopped: capture.max_total_mb=%g reached at %s (%.3g MB of capture files); "
                        "%d record(s) not written, later requests not captured. Raise the limit, or move the files "
                        "away and restart the endpoint", self.max_total_mb, redact_text(self.destination),
                        self.total_bytes / MB, len(lines))
            return
        self._seq += 1
        name = capture_file_name(started, os.getpid(), self._seq)
        path = f"{self.root}/{name}"
        try:
            if self.local:
                self.fs.makedirs(self.root, exist_ok=True)
                tmp = f"{self.root}/.{name}.tmp"
                with self.fs.open(tmp, "wb") as fh:
                    fh.write(data)
                self.fs.mv(tmp, path)
            else:
                with self.fs.open(path, "wb") as fh:
                    fh.write(data)
        except Exception as exc:  # capture must never take the endpoint down
            log.warning("data capture: cannot write %s (%d records lost): %s: %s",
                        redact_text(f"{self.destination}/{name}"), len(lines), type(exc).__name__, exc)
            return
        self.files_written.append(f"{self.destination}/{name}")
        self.records_written += len(lines)
        self.total_bytes += len(data)
        log.debug("data capture: wrote %d record(s) to %s/%s", len(lines), self.destination, name)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is buffered and stop the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None


def _encode(record: Dict[str, Any]) -> Optional[bytes]:
    """One record as a JSON line, or None (logged) when it cannot be written."""
    try:
        return (json.dumps(record, default=_jsonable, allow_nan=False) + "\n").encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("data capture: record %s not written: %s: %s", record.get("request_id"), type(exc).__name__, exc)
        return None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        obj = obj.item()
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        return obj
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def _csv_value(field: str) -> Any:
    """A CSV field as a table reader would type it: empty -> null, a number -> float, else text."""
    text = field.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return field
    return value if math.isfinite(value) else None


def raw_records(body: bytes, kind: str, schema: Any) -> Optional[List[Dict[str, Any]]]:
    """The request's rows as the client sent them (before any casting), or None if unreadable.

    Capture keeps these, not the typed rows, so the monitor can see what clients really send:
    extra or missing columns and values of the wrong type included.
    """
    import csv
    import io
    import json

    try:
        text = body.decode("utf-8-sig")
        if kind == "application/json":
            doc = json.loads(text)
            rows = doc.get("instances") if isinstance(doc, dict) else None
            if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
                return [{str(k): _raw_value(v) for k, v in r.items()} for r in rows]
            return None
        out = []
        for row in csv.reader(io.StringIO(text)):
            if not row or not any(f.strip() for f in row):
                continue
            cols = next((c for c in (list(schema.columns), list(getattr(schema, "input_columns", [])))
                         if len(c) == len(row)), None)
            if cols is None:
                return None  # a wrong number of fields: no column names to give the values
            out.append({c: _csv_value(f) for c, f in zip(cols, row)})
        return out or None
    except Exception:  # capture must never break a request
        return None


def _raw_value(v: Any) -> Any:
    """A JSON value as captured: scalars as sent; a list or an object (which no feature value can
    be) as a short placeholder, so a deeply nested one cannot break the capture writer."""
    if isinstance(v, (list, dict)):
        return f"<{'list' if isinstance(v, list) else 'object'}>"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2 ** 1024:
        return None  # beyond float64, as a float reader would see it (and not 4,300 digits of text)
    return json_value(v)


def frame_records(df) -> List[Dict[str, Any]]:
    """Rows of a typed frame as JSON-ready dicts (missing values become null)."""
    cols = list(df.columns)
    out = []
    for row in df.itertuples(index=False, name=None):
        out.append({c: json_value(v) for c, v in zip(cols, row)})
    return out


