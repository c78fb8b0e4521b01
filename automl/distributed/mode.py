"""``scale.mode``: single, distributed or auto (distributed above ``scale.auto_bytes``); the keys
are checked with the rest of the config (automl/config/validate.py). Imports nothing of Ray."""
from __future__ import annotations

import logging
from typing import Any, Dict

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def data_bytes(path: str, storage_options: Dict[str, Any]) -> int:
    """The total size of the files at ``path`` (a file, folder or prefix)."""
    import fsspec

    from automl.data.listing import list_files

    total = 0
    for url in list_files(path, storage_options, what="data.path", tables_only=True):
        fs, file_path = fsspec.core.url_to_fs(url, **storage_options)
        total += int(fs.size(file_path) or 0)
    return total


def is_distributed(cfg: DictConfig, has_frame: bool = False) -> bool:
    """Whether this fit runs in the distributed mode (``scale.mode``; auto: by data.path's size).
    A table handed over in memory (the Python API) is always fitted on one machine."""
    s = cfg.get("scale")
    if s is None or s.mode == "single" or has_frame:
        return False
    if s.mode == "distributed":
        return True
    if "://" not in cfg.data.path and cfg.data.path.startswith("sklearn:"):
        return False
    size = data_bytes(cfg.data.path, dict(cfg.data.storage_options))
    chosen = size > int(s.auto_bytes)
    log.info("scale.mode=auto: data.path holds %.1f MB, %s scale.auto_bytes=%.1f MB: %s mode", size / 1e6,
             "over" if chosen else "not over", int(s.auto_bytes) / 1e6, "distributed" if chosen else "single")
    return chosen
