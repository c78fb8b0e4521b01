"""Read and write tables (CSV, TSV/TXT, Excel, Parquet, JSON Lines; gzip) on any fsspec URL.

Reading lives in ``automl.data.reader`` (one reader for fit, batch predict and monitor) by the
rules of ``automl.data.formats``; this module writes, and keeps the reading names where callers
have always found them.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import fsspec
import pandas as pd

from automl.data.formats import compression_of, table_format
from automl.data.reader import DEMO_DATASETS, read_failure, read_table

__all__ = ["DEMO_DATASETS", "read_failure", "read_table", "table_format", "write_table"]


def write_table(df: pd.DataFrame, path: str, storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Write CSV, or Parquet when the name ends in .parquet (gzip when it ends in .gz)."""
    with fsspec.open(path, "wb", compression=compression_of(path), auto_mkdir=True,
                     **(storage_options or {})) as fh:
        if table_format(path) == "parquet":
            df.to_parquet(fh, index=False)
        else:
            fh.write(df.to_csv(index=False).encode("utf-8"))
