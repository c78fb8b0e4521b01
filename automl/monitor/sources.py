"""Where `automl monitor` reads its batches: a table file, a folder or prefix of files, or the
JSON Lines files written by an endpoint's data capture (any fsspec URL).

A capture file (``capture-<timestamp>-<pid>-<seq>.jsonl``) holds one JSON object per request:
``{"request_id", "timestamp", "trial_id", "content_type", "instances": [{column: value}, ...],
"predictions": [...]}``; the rows to check are the concatenated ``instances``.
"""
from __future__ import annotations

import gzip
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

import fsspec
import pandas as pd

from automl.data.io import read_failure, read_table
from automl.errors import DataError, storage_failure

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".parquet", ".pq", ".xlsx", ".xls", ".jsonl", ".json")
_COMPRESSION = (".gz", ".bz2", ".zip", ".xz")


def _is_table_name(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    if name.startswith((".", "_")):
        return False
    for comp in _COMPRESSION:
        if name.endswith(comp):
            name = name[: -len(comp)]
    return name.endswith(TABLE_SUFFIXES)


def _fs(url: str, storage_options: Optional[Dict[str, Any]]) -> Tuple[Any, str]:
    return fsspec.core.url_to_fs(url, **(storage_options or {}))


def _unstrip(fs: Any, url: str, path: str) -> str:
    """A path from ``fs`` back as a URL in the same form as ``url``."""
    if "://" not in url:
        return path
    return fs.unstrip_protocol(path)


def list_data_files(url: str, storage_options: Optional[Dict[str, Any]] = None,
                    allow_empty: bool = False) -> List[str]:
    """The data files under ``url``: the file itself, every table file below a folder, or every
    table file whose name starts with a prefix; sorted by name."""
    fs, path = _fs(url, storage_options)
    try:
        if fs.isfile(path):
            return [url]
        if fs.isdir(path):
            found = [p for p in fs.find(path) if _is_table_name(p)]
        else:
            found = [p for p in fs.glob(path.rstrip("/") + "*") if fs.isfile(p) and _is_table_name(p)]
    except Exception as exc:  # storage, credential and URL failures come in many types
        known = storage_failure(exc, url, "data")
        raise known or DataError(f"data: cannot list {url}: {type(exc).__name__}: {exc}") from None
    if not found and not allow_empty:
        raise DataError(f"data: nothing to read at {url} (no such file, and no folder or prefix of data files); "
                        f"give a file, or a folder or prefix of "
                        f"{', '.join(TABLE_SUFFIXES)} files (optionally .gz)")
    return sorted(_unstrip(fs, url, p) for p in found)


def file_info(url: str, storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Size and modification time (seconds since the epoch, or None) of one file."""
    fs, path = _fs(url, storage_options)
    info = fs.info(path)
    mtime = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return {"size": int(info.get("size") or 0), "mtime": float(mtime) if mtime is not None else None}


def _first_record(raw: bytes) -> Optional[Dict[str, Any]]:
    """The first line that parses as a JSON object; corrupt lines before it (a torn write, a
    truncated copy) are passed over here and counted by ``capture_rows``."""
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _raw(url: str, storage_options: Optional[Dict[str, Any]]) -> bytes:
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"data: file not found: {url}. Check the path or URL") from None
    except Exception as exc:  # storage, credential and URL failures come in many types
        raise read_failure(exc, url, "data") from None
    if url.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw


def _is_jsonl_name(url: str) -> bool:
    base = url.lower()[:-3] if url.lower().endswith(".gz") else url.lower()
    return base.endswith((".jsonl", ".json"))


def is_capture(url: str, storage_options: Optional[Dict[str, Any]] = None) -> bool:
    """True when ``url`` is a JSON Lines file of data-capture records."""
    if not _is_jsonl_name(url):
        return False
    first = _first_record(_raw(url, storage_options))
    return bool(first) and "instances" in first


def capture_rows(raw: bytes, where: str = "capture") -> pd.DataFrame:
    """The concatenated ``instances`` of capture records; unreadable lines are skipped and logged."""
    rows: List[Dict[str, Any]] = []
    bad = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            instances = record["instances"]
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        for inst in instances if isinstance(instances, list) else []:
            if isinstance(inst, dict):
                rows.append(inst)
            else:
                bad += 1
    if bad:
        log.warning("%s: skipped %d capture line(s) or instance(s) that are not JSON objects", where, bad)
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def read_data_file(url: str, storage_options: Optional[Dict[str, Any]] = None) -> pd.DataFrame:
    """One file: capture JSON Lines or any table format ``automl.data.io.read_table`` reads."""
    if _is_jsonl_name(url):
        raw = _raw(url, storage_options)
        first = _first_record(raw)
        if first and "instances" in first:
            return capture_rows(raw, url)
    return read_table(url, storage_options, what="data")


def read_batch(urls: List[str], storage_options: Optional[Dict[str, Any]] = None) -> pd.DataFrame:
    """All rows of ``urls`` in one frame (columns united; a column absent from a file is missing there)."""
    frames = [read_data_file(u, storage_options) for u in urls]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True, sort=False)

