"""Reading ``data.path`` as a Ray Dataset: Parquet or CSV shards under a folder or prefix, local
or any fsspec URL (s3://, gs://, ...). The driver only lists the files; Ray's read tasks read them."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Tuple

from automl.data.listing import list_files
from automl.errors import DataError

log = logging.getLogger(__name__)
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
# CPUs each Ray Data task of the distributed mode reserves: light streaming work, and a fraction
# fits next to a Train job's workers, which may leave a node less than a whole CPU.
DATA_TASK_CPUS = 0.5


def table_files(path: str, storage_options: Dict[str, Any], what: str = "data.path") -> Tuple[str, List[str]]:
    """(format, files) of the Parquet or CSV files at ``path``; one format per table."""
    files = list_files(path, storage_options, what=what, tables_only=True)
    kinds = {"parquet" if f.lower().endswith(PARQUET_SUFFIXES) else
             "csv" if f.lower().endswith(CSV_SUFFIXES) else "other" for f in files}
    if kinds - {"parquet", "csv"} or len(kinds) != 1:
        raise DataError(f"{what}: scale.mode=distributed reads Parquet or CSV files, all of one format; {path} "
                        f"holds {', '.join(sorted(kinds))} files. Convert them, or use scale.mode=single")
    return kinds.pop(), files


def arrow_filesystem(url: str, storage_options: Dict[str, Any]) -> Tuple[Any, str]:
    """(pyarrow filesystem, path) for ``url``: local paths as they are, any other fsspec URL
    through pyarrow's fsspec handler (it pickles to Ray's read tasks with its options)."""
    import fsspec
    import pyarrow.fs as pafs

    if "://" not in url or url.startswith("file://"):
        return pafs.LocalFileSystem(), fsspec.core.url_to_fs(url, **storage_options)[1]
    try:  # pyarrow asks for exact ranges and buffers them itself: no fsspec read-ahead (50 MB per open file on S3)
        fs, path = fsspec.core.url_to_fs(url, **{"default_cache_type": "none", **storage_options})
    except TypeError:  # a filesystem without that option
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def read_dataset(path: str, storage_options: Dict[str, Any], what: str = "data.path"):
    """``path`` as a Ray Dataset (lazy: nothing is read here but the listing)."""
    import ray.data

    fmt, files = table_files(path, storage_options, what)
    fs, _ = arrow_filesystem(files[0], storage_options)
    paths = [arrow_filesystem(f, storage_options)[1] for f in files]
    log.info("reading %s as a Ray Dataset: %d %s file(s)", path, len(files), fmt)
    try:
        if fmt == "parquet":
            return ray.data.read_parquet(paths, filesystem=fs, num_cpus=DATA_TASK_CPUS)
        return ray.data.read_csv(paths, filesystem=fs, num_cpus=DATA_TASK_CPUS)
    except Exception as exc:  # storage and format failures come in many types
        raise DataError(f"{what}: cannot read {path} as a Ray Dataset: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def plain_frame(df):
    """``df`` with numpy-backed columns (strings as objects), as pandas reads a Parquet file: Ray
    Data's pandas batches may hold Arrow-backed columns, which not every step handles."""
    import pandas as pd
    import pyarrow as pa

    if not any(isinstance(t, pd.ArrowDtype) or str(t).endswith("[pyarrow]") for t in df.dtypes):
        return df
    return pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None).to_pandas()
