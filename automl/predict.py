"""`automl predict`: batch transform with any trial's model, streamed in chunks.

    automl predict run_dir=DIR input=URL output=URL [overwrite=true] [trial=ID] [predict.backend=local|ray]
        [predict.keep_columns=[id,...]] [predict.chunk_rows=N]

``input`` is one file or a folder/prefix of files (local or any fsspec URL; CSV/TSV, Parquet,
JSON Lines, Excel; gzip and other compressions by suffix). Files are read in chunks (pandas
``read_csv(chunksize=...)``, pyarrow Parquet batches) and the output is written chunk by chunk,
so memory stays bounded by the chunk size, not the data size. Output rows keep input order:
files in name order, rows in file order. ``predict.backend=ray`` predicts the chunks as Ray
tasks on the current cluster (a bounded window in flight), still writing them in order.

The output is all-or-nothing: it is written under a hidden temporary name beside it (on an object
store: as one upload) and appears only when every row is in; an output that is the input, lies in
the input folder/prefix, or already exists (without ``overwrite=true``) is refused up front.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pandas as pd

from automl.artifacts import atomic_open, join, locate
from automl.data import iter_table, list_files, require_columns
from automl.data.formats import compression_of, table_format
from automl.errors import AutoMLError, ConfigError, DataError
from automl.model import ModelBundle
from automl.rundir.run import load
from automl.serving.schema import InputSchema, training_dtypes

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
DEFAULT_CHUNK_ROWS = 100_000


# -- input ---------------------------------------------------------------------------------------

def list_inputs(url: str, storage_options: Optional[Dict[str, Any]] = None) -> List[str]:
    """One file, or every data file under a folder/prefix in name order (``.``/``_`` names skipped)."""
    return list_files(url, storage_options, what="input")


def iter_chunks(url: str, chunk_rows: int, storage_options: Optional[Dict[str, Any]] = None) -> Iterator[pd.DataFrame]:
    """The rows of one file, ``chunk_rows`` at a time, read as ``automl fit`` reads it."""
    return iter_table(url, chunk_rows, storage_options, what="input")


# -- output --------------------------------------------------------------------------------------

class ChunkWriter:
    """CSV (header once) or Parquet (one row group per chunk), written to ``fh`` as chunks arrive."""

    def __init__(self, fh: IO[bytes], url: str):
        self.fh, self.url = fh, url
        self.fmt = "parquet" if table_format(url) == "parquet" else "csv"
        self.parquet = None
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt == "csv":
            self.fh.write(df.to_csv(index=False, header=self.rows == 0).encode("utf-8"))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self.parquet is None:
                table = pa.Table.from_pandas(df, preserve_index=False)
                self.parquet = pq.ParquetWriter(self.fh, table.schema)
            else:
                try:
                    table = pa.Table.from_pandas(df, schema=self.parquet.schema, preserve_index=False)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise DataError(f"output: chunk at row {self.rows + 1} does not fit the Parquet schema of the "
                                    f"first chunk ({exc}); write CSV instead (output=....csv)") from None
            self.parquet.write_table(table)
        self.rows += len(df)

    def close(self) -> None:
        """Finish the Parquet footer; the file itself is moved into place by ``artifacts.atomic_open``."""
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None


def check_output(input: str, output: str, storage_options: Optional[Dict[str, Any]] = None,
                 overwrite: bool = False) -> None:
    """Refuse an output that is the input, lies inside an input folder/prefix, is a folder, or
    already exists (unless ``overwrite``); run before anything is opened for writing."""
    so = storage_options or {}
    try:
        in_fs, in_proto, in_path = locate(input, so)
        out_fs, out_proto, out_path = locate(output, so)
        if in_proto == out_proto and in_path == out_path:
            raise ConfigError(f"output {output} is the same file as the input; write the predictions to another "
                              f"file (the input is never overwritten)")
        if in_proto == out_proto and not in_fs.isfile(in_path):
            folder = in_fs.isdir(in_path)
            inside = (out_path.startswith(in_path.rstrip("/") + "/") if folder  # a prefix that matches files:
                      else out_path.startswith(in_path) and bool(in_fs.glob(in_path + "*")))
            if inside:
                where = "inside the input folder" if folder else "under the input prefix"
                raise ConfigError(f"output {output} is {where} {input}, where it would be read as input next time; "
                                  f"write it elsewhere")
        if out_fs.isdir(out_path):
            raise ConfigError(f"output {output} is a folder; give a file name, "
                              f"e.g. output={join(output, 'predictions.csv')}")
        if out_fs.exists(out_path) and not overwrite:
            raise ConfigError(f"output {output} already exists; pass overwrite=true to replace it, or choose another "
                              f"output")
    except (OSError, ValueError, ImportError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise DataError(f"output: cannot check {output}: {type(exc).__name__}: {exc}") from None


# -- prediction ----------------------------------------------------------------------------------

def predict_chunk(bundle: ModelBundle, schema: InputSchema, chunk: pd.DataFrame, keep: Sequence[str],
                  first_row: int = 1) -> pd.DataFrame:
    """``predicted_label`` (+ ``proba_<class>``) for one chunk, with the kept input columns first."""
    require_columns(schema.columns, chunk.columns)
    out = bundle.predict_frame(schema.coerce(chunk, first_row))
    if keep:
        out = pd.concat([chunk[list(keep)].reset_index(drop=True), out], axis=1)
    return out


def _chunks(files: List[str], chunk_rows: int, so: Dict[str, Any], keep: Sequence[str]
            ) -> Iterator[Tuple[pd.DataFrame, int]]:
    seen = 0
    for url in files:
        for chunk in iter_chunks(url, chunk_rows, so):
            chunk.columns = [str(c) for c in chunk.columns]
            absent = [c for c in keep if c not in chunk.columns]
            if absent:
                raise DataError(f"predict.keep_columns: {', '.join(absent)} not in {url}; "
                                f"its columns: {', '.join(list(chunk.columns)[:20])}")
            yield chunk, seen + 1
            seen += len(chunk)


def batch_predict(run_dir: str, input: str, output: str, storage_options: Optional[Dict[str, Any]] = None,
                  trial: Optional[str] = None, backend: str = "local", keep_columns: Optional[Sequence[str]] = None,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS, ray_address: Optional[str] = None,
                  overwrite: bool = False, allow_pickle: bool = False) -> int:
    """Predict every row of ``input`` (file, folder or prefix) into ``output``; returns the row count.

    The output appears only when every row is written (a temporary name moved into place, or one
    upload on an object store); on any error nothing is left at ``output``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"predict.backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if int(chunk_rows) < 1:
        raise ConfigError(f"predict.chunk_rows must be >= 1; got {chunk_rows}")
    started = time.time()
    so = storage_options or {}
    check_output(input, output, so, overwrite)
    run = load(run_dir, storage_options, allow_pickle=allow_pickle)  # pickles: earlier releases, trusted only
    bundle = run.trial_model(trial)
    schema = InputSchema.from_model(bundle, training_dtypes(run))
    keep = list(keep_columns or [])
    files = list_inputs(input, so)
    log.info("predicting %d file(s) from %s with trial %s (%s), %s backend", len(files), input,
             bundle.trial_id or run.best_trial_id, bundle.candidate, backend)
    chunks = _chunks(files, int(chunk_rows), so, keep)
    try:
        sink = atomic_open(output, "wb", so, compression=compression_of(output))
    except (OSError, ValueError) as exc:
        raise DataError(f"output: cannot write {output}: {type(exc).__name__}: {exc}") from None
    with sink as fh:
        writer = ChunkWriter(fh, output)
        try:
            if backend == "ray":
                _predict_ray(bundle, schema, chunks, keep, writer, ray_address)
            else:
                for chunk, first in chunks:
                    writer.write(predict_chunk(bundle, schema, chunk, keep, first))
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                writer.close()  # before the temporary file is thrown away
            raise
        writer.close()
    log.info("wrote %d predictions to %s in %.1f s", writer.rows, output, time.time() - started)
    return writer.rows


def _predict_ray(bundle: ModelBundle, schema: InputSchema, chunks: Iterator[Tuple[pd.DataFrame, int]],
                 keep: Sequence[str], writer: ChunkWriter, ray_address: Optional[str]) -> None:
    """Chunks as Ray tasks, at most two per CPU in flight; results written in input order."""
    import ray

    from automl.raystart import init_ray

    cpus = init_ray(ray_address, None)
    task = ray.remote(num_cpus=1)(predict_chunk)
    model_ref = ray.put(bundle)
    window: deque = deque()

    def result(ref) -> pd.DataFrame:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # a user error in a task: the same one-line error here
            if isinstance(exc.cause, AutoMLError):
                raise exc.cause from None
            raise

    for chunk, first in chunks:
        window.append(task.remote(model_ref, schema, chunk, list(keep), first))
        while len(window) >= 2 * cpus:
            writer.write(result(window.popleft()))
    while window:
        writer.write(result(window.popleft()))
