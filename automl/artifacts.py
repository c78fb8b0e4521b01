"""The run folder: small fsspec helpers for reading and writing artifacts on any URL."""
from __future__ import annotations

import json
import pickle
from typing import Any, Dict, Optional

import fsspec
import yaml

from automl.errors import ArtifactError

MODEL_FILE = "model.pkl"
SUMMARY_FILE = "summary.json"
LEADERBOARD_FILE = "leaderboard.csv"
CONFIG_FILE = "config.yaml"


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def write_bytes(url: str, data: bytes, storage_options: Optional[Dict[str, Any]] = None) -> None:
    with fsspec.open(url, "wb", auto_mkdir=True, **(storage_options or {})) as fh:
        fh.write(data)


def read_bytes(url: str, storage_options: Optional[Dict[str, Any]] = None) -> bytes:
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as fh:
            return fh.read()
    except FileNotFoundError:
        raise ArtifactError(f"run folder is incomplete: {url} not found; pass the folder of a finished `automl fit` run") from None


def write_text(url: str, text: str, storage_options: Optional[Dict[str, Any]] = None) -> None:
    write_bytes(url, text.encode("utf-8"), storage_options)


def read_text(url: str, storage_options: Optional[Dict[str, Any]] = None) -> str:
    return read_bytes(url, storage_options).decode("utf-8")


def write_json(url: str, obj: Any, storage_options: Optional[Dict[str, Any]] = None) -> None:
    write_text(url, json.dumps(obj, indent=2, default=_jsonable, allow_nan=True) + "\n", storage_options)


def read_json(url: str, storage_options: Optional[Dict[str, Any]] = None) -> Any:
    return json.loads(read_text(url, storage_options))


def write_yaml(url: str, obj: Any, storage_options: Optional[Dict[str, Any]] = None, header: str = "") -> None:
    body = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
    write_text(url, (header + body) if header else body, storage_options)


def save_pickle(url: str, obj: Any, storage_options: Optional[Dict[str, Any]] = None) -> int:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    write_bytes(url, data, storage_options)
    return len(data)


def load_pickle(url: str, storage_options: Optional[Dict[str, Any]] = None) -> Any:
    return pickle.loads(read_bytes(url, storage_options))


def exists(url: str, storage_options: Optional[Dict[str, Any]] = None) -> bool:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs.exists(path)


def _jsonable(obj: Any):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
