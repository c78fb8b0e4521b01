"""Where `automl monitor` reads its batches: a table file, a folder or prefix of files, or the
JSON Lines files written by an endpoint's data capture (any fsspec URL).

A capture file (``capture-<timestamp>-<pid>-<seq>.jsonl``) holds one JSON object per request:
``{"request_id", "timestamp", "trial_id", "content_type", "instances": [{column: value}, ...],
"predictions": [...]}``; the rows to check are the concatenated ``instances``.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Tuple

import fsspec
import pandas as pd

from automl.data.formats import TABLE_SUFFIXES, table_format
from automl.data.listing import list_files
from automl.data.reader import parse_table, read_bytes, read_table

log = logging.getLogger(__name__)

__all__ = ["TABLE_SUFFIXES", "capture_rows", "file_info", "is_capture", "list_data_files", "read_batch",
           "read_data_file"]


def _fs(url: str, storage_options: Optional[Dict[str, Any]]) -> Tuple[Any, str]:
    return fsspec.core.url_to_fs(url, **(storage_options or {}))


def list_data_files(url: str, storage_options: Optional[Dict[str, Any]] = None,
                    allow_empty: bool = False) -> List[str]:
    """The data files under ``url``: the file itself, every table file below a folder, or every
    table file whose path starts with a prefix; sorted by name (``automl.data.listing``)."""
    return list_files(url, storage_options, what="data", tables_only=True, allow_empty=allow_empty)


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


def _is_jsonl_name(url: str) -> bool:
    return table_format(url) == "jsonl"


def is_capture(url: str, storage_options: Optional[Dict[str, Any]] = None) -> bool:
    """True when ``url`` is a JSON Lines file of data-capture records."""
    if not _is_jsonl_name(url):
        return False
    first = _first_record(read_bytes(url, storage_options, what="data"))
    return bool(first) and "instances" in first


def capture_records(raw: bytes, key: str) -> Tuple[List[Tuple[Dict[str, Any], Any]], int]:
    """(record, record[key]) for each line of a capture file that is a JSON object holding ``key``,
    and how many non-blank lines were not."""
    out: List[Tuple[Dict[str, Any], Any]] = []
    bad = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            out.append((record, record[key]))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return out, bad


def capture_rows(raw: bytes, where: str = "capture") -> pd.DataFrame:
    """The concatenated ``instances`` of capture records; unreadable lines are skipped and logged."""
    rows: List[Dict[str, Any]] = []
    records, bad = capture_records(raw, "instances")
    for _, instances in records:
        for inst in instances if isinstance(instances, list) else []:
            if isinstance(inst, dict):
                rows.append(inst)
            else:
                bad += 1
    if bad:
        log.warning("%s: skipped %d capture line(s) or instance(s) that are not JSON objects", where, bad)
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def read_data_file(url: str, storage_options: Optional[Dict[str, Any]] = None) -> pd.DataFrame:
    """One file: capture JSON Lines, or any table as ``automl fit`` reads it (``automl.data.reader``)."""
    if _is_jsonl_name(url):
        raw = read_bytes(url, storage_options, what="data")
        first = _first_record(raw)
        if first and "instances" in first:
            return capture_rows(raw, url)
        return parse_table(raw, url, what="data")
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

