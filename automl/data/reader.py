"""One reader for every caller: a whole table (fit, monitor) or the same table in chunks (batch
predict), from a local path or any fsspec URL, by the rules of ``automl.data.formats``.

A file decodes the same way whichever way it is read: the chunked reader settles the encoding
over the whole file, exactly as the whole-table reader does, before it parses. That costs one
streaming pass before the parsing one (two for a file that is not UTF-8), in bounded memory; a
file under 1 MiB is read once.
"""
from __future__ import annotations

import io
import logging
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

import fsspec
import pandas as pd

from automl.data.formats import (
    BLOCK_BYTES, SAMPLE_BYTES, compression_of, detect_encoding, memory_blocks, table_format, text_layout,
    tidy_frame,
)
from automl.errors import DataError, storage_failure

log = logging.getLogger(__name__)

DEMO_DATASETS = ("sklearn:digits",)


# -- a whole table -------------------------------------------------------------------------------

def read_table(
    path: str,
    storage_options: Optional[Dict[str, Any]] = None,
    sheet: Optional[str] = None,
    what: str = "data.path",
    nrows: Optional[int] = None,
) -> pd.DataFrame:
    """Read one table. Errors name the key (``what``), the problem and the fix."""
    if path in DEMO_DATASETS:
        return _load_demo(path)
    if not path:
        raise DataError(f"{what} is empty; give a file path or URL, e.g. {what}=data.csv")
    return parse_table(read_bytes(path, storage_options, what), path, what, sheet, nrows)


def read_bytes(url: str, storage_options: Optional[Dict[str, Any]] = None, what: str = "data.path") -> bytes:
    """The whole content of one file, decompressed by its suffix (``.gz``, ``.bz2``, ``.zip``, ``.xz``)."""
    try:
        with fsspec.open(url, "rb", compression=compression_of(url), **(storage_options or {})) as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{what}: file not found: {url}. Check the path or URL") from None
    except IsADirectoryError:
        raise DataError(f"{what}: {url} is a folder; give a file") from None
    except Exception as exc:  # storage, credential and URL failures come in many types
        raise read_failure(exc, url, what) from None


def parse_table(raw: bytes, path: str, what: str = "data.path", sheet: Optional[str] = None,
                nrows: Optional[int] = None) -> pd.DataFrame:
    """The table in ``raw``, the content of the file ``path`` (whose name gives the format)."""
    if not raw.strip():
        raise DataError(f"{what}: {path} is empty; give a file with a header row and data rows")
    fmt = table_format(path)
    try:
        df = _parse(raw, fmt, sheet, nrows)
    except DataError as exc:  # a problem _parse found: say which file
        raise DataError(f"{what}: {path}: {exc.message}") from None
    except Exception as exc:  # parser errors come in many types
        raise DataError(f"{what}: cannot parse {path} as {fmt}: {_first_line(exc)}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"{what}: {path} has no data rows; give a file with a header row and data rows")
    return tidy_frame(df, path)


def read_failure(exc: BaseException, url: str, what: str = "data.path") -> DataError:
    """One line for any failure to open or read ``url``: missing credentials, a malformed URL,
    permission denied, an unreachable endpoint, or anything else the storage layer raised."""
    known = storage_failure(exc, url, what)
    if known is not None:
        return known
    first = " ".join(str(exc).split())[:300]
    return DataError(f"{what}: cannot read {url}: {type(exc).__name__}: {first}")


def _load_demo(name: str) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    return load_digits(as_frame=True).frame


def _parse(raw: bytes, fmt: str, sheet: Optional[str], nrows: Optional[int]) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(raw))
    if fmt == "excel":
        book = pd.ExcelFile(io.BytesIO(raw))
        if sheet is not None and sheet not in book.sheet_names:
            raise DataError(f"data.sheet '{sheet}' is not a sheet of this workbook; its sheets are: "
                            f"{', '.join(map(str, book.sheet_names))}")
        if sheet is None and len(book.sheet_names) > 1:
            log.info("reading the first of %d sheets (%s); choose another with data.sheet=NAME",
                     len(book.sheet_names), ", ".join(map(str, book.sheet_names)))
        return book.parse(sheet_name=sheet if sheet is not None else 0, nrows=nrows)
    if fmt == "jsonl":
        return pd.read_json(io.BytesIO(raw), lines=True, nrows=nrows)
    layout = text_layout(raw, detect_encoding(raw, memory_blocks(raw)), fmt)
    return pd.read_csv(io.BytesIO(raw), nrows=nrows, **layout.read_csv_options())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the same table in chunks --------------------------------------------------------------------

def iter_table(url: str, chunk_rows: int, storage_options: Optional[Dict[str, Any]] = None,
               what: str = "input") -> Iterator[pd.DataFrame]:
    """The rows of one file, ``chunk_rows`` at a time (Excel, which cannot stream: one chunk).

    The chunks add up to ``read_table``'s frame: the same encoding, delimiter, decimal mark,
    missing-value markers, compression and column names. A file with a header and no rows gives
    one empty chunk (a batch may hold an empty part), where ``read_table`` refuses it.
    """
    so = storage_options or {}
    fmt = table_format(url)
    compression = compression_of(url)
    try:
        if fmt == "excel":
            yield read_table(url, so, what=what)
            return
        if fmt == "parquet":
            chunks: Iterable[pd.DataFrame] = _parquet_chunks(url, so, compression, chunk_rows)
        elif fmt == "jsonl":
            chunks = _json_chunks(url, so, compression, chunk_rows)
        else:
            chunks = _text_chunks(url, so, compression, fmt, chunk_rows, what)
        for i, chunk in enumerate(chunks):
            yield tidy_frame(chunk, url, quiet=i > 0)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{what}: file not found: {url}. Check the path or URL") from None
    except Exception as exc:  # parser errors come in many types
        raise DataError(f"{what}: cannot read {url} as {fmt}: {_first_line(exc)}") from None


def _open(url: str, so: Dict[str, Any], compression: Optional[str]) -> Any:
    return fsspec.open(url, "rb", compression=compression, **so)


def _parquet_chunks(url: str, so: Dict[str, Any], compression: Optional[str], chunk_rows: int
                    ) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    with _open(url, so, compression) as fh:
        source = io.BytesIO(fh.read()) if compression else fh  # a compressed stream cannot seek
        for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def _json_chunks(url: str, so: Dict[str, Any], compression: Optional[str], chunk_rows: int
                 ) -> Iterator[pd.DataFrame]:
    with _open(url, so, compression) as fh:
        yield from pd.read_json(fh, lines=True, chunksize=chunk_rows)


def _text_chunks(url: str, so: Dict[str, Any], compression: Optional[str], fmt: str, chunk_rows: int,
                 what: str) -> Iterator[pd.DataFrame]:
    with _open(url, so, compression) as fh:
        head = _read_up_to(fh, SAMPLE_BYTES)
    if not head.strip():
        raise DataError(f"{what}: {url} is empty; give a file with a header row and data rows")
    whole = len(head) < SAMPLE_BYTES  # the head is the whole file: no second read
    blocks: Callable[[], Iterable[Any]] = (memory_blocks(head) if whole
                                           else lambda: _stream_blocks(url, so, compression))
    try:
        layout = text_layout(head, detect_encoding(head, blocks), fmt)
    except DataError as exc:  # as read_table says it
        raise DataError(f"{what}: {url}: {exc.message}") from None
    if whole:
        yield from pd.read_csv(io.BytesIO(head), chunksize=chunk_rows, **layout.read_csv_options())
        return
    with _open(url, so, compression) as fh:
        yield from pd.read_csv(fh, chunksize=chunk_rows, **layout.read_csv_options())


def _read_up_to(fh: Any, n: int) -> bytes:
    """``n`` bytes, or fewer only at the end of the file (a stream may return short reads)."""
    parts, size = [], 0
    while size < n:
        part = fh.read(n - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _stream_blocks(url: str, so: Dict[str, Any], compression: Optional[str]) -> Iterator[bytes]:
    """One pass over the decompressed content of ``url``, ``BLOCK_BYTES`` at a time."""
    with _open(url, so, compression) as fh:
        while True:
            block = fh.read(BLOCK_BYTES)
            if not block:
                return
            yield block
