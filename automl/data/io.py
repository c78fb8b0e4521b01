"""Read and write tables (CSV, TSV/TXT, Excel, Parquet, JSON Lines; gzip) on any fsspec URL."""
from __future__ import annotations

import codecs
import csv
import io
import logging
from typing import Any, Dict, Optional

import fsspec
import numpy as np
import pandas as pd

from automl.errors import DataError, storage_failure

log = logging.getLogger(__name__)

DEMO_DATASETS = ("sklearn:digits",)
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", "")


def _strip_compression(path: str) -> tuple[str, Optional[str]]:
    lower = path.lower()
    for suffix, comp in ((".gz", "gzip"), (".bz2", "bz2"), (".zip", "zip"), (".xz", "xz")):
        if lower.endswith(suffix):
            return lower[: -len(suffix)], comp
    return lower, None


def table_format(path: str) -> str:
    base, _ = _strip_compression(path)
    for suffix, fmt in (
        (".parquet", "parquet"), (".pq", "parquet"), (".xlsx", "excel"), (".xls", "excel"),
        (".jsonl", "jsonl"), (".json", "jsonl"), (".tsv", "delimited"), (".txt", "delimited"),
    ):
        if base.endswith(suffix):
            return fmt
    return "csv"


def _load_demo(name: str) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    return frame


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
    except csv.Error:
        return ","


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
    fmt = table_format(path)
    _, compression = _strip_compression(path)
    try:
        of = fsspec.open(path, "rb", compression=compression, **(storage_options or {}))
        with of as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"{what}: file not found: {path}. Check the path or URL") from None
    except IsADirectoryError:
        raise DataError(f"{what}: {path} is a folder; give a file") from None
    except Exception as exc:  # storage, credential and URL failures come in many types
        raise read_failure(exc, path, what) from None
    if not raw.strip():
        raise DataError(f"{what}: {path} is empty; give a file with a header row and data rows")
    try:
        df = _parse(raw, fmt, sheet, nrows)
    except DataError as exc:  # a problem _parse found: say which file
        raise DataError(f"{what}: {path}: {exc.message}") from None
    except Exception as exc:  # parser errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what}: cannot parse {path} as {fmt}: {first}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"{what}: {path} has no data rows; give a file with a header row and data rows")
    names = [str(c).strip() for c in df.columns]
    if names != [str(c) for c in df.columns]:
        log.info("stripped spaces around column names in %s", path)
    df.columns = names
    return _flatten_nested(df)


def read_failure(exc: BaseException, url: str, what: str = "data.path") -> DataError:
    """One line for any failure to open or read ``url``: missing credentials, a malformed URL,
    permission denied, an unreachable endpoint, or anything else the storage layer raised."""
    known = storage_failure(exc, url, what)
    if known is not None:
        return known
    first = " ".join(str(exc).split())[:300]
    return DataError(f"{what}: cannot read {url}: {type(exc).__name__}: {first}")


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _encoding(raw: bytes) -> str:
    """The text encoding: a BOM decides (UTF-8/16/32), else UTF-8, then cp1252, then latin-1.

    Checked with an incremental decoder over 1 MiB blocks, so a large file is never held
    twice (bytes and text) in memory.
    """
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            return enc
    if b"\x00" in raw[:65536]:
        raise DataError("does not look like a text table (it holds binary NUL bytes); give CSV, TSV, "
                        "Parquet, Excel or JSON Lines, or name the file by its format (.parquet, .xlsx)")
    view = memoryview(raw)
    for enc in ("utf-8-sig", "cp1252"):
        decoder = codecs.getincrementaldecoder(enc)()
        try:
            for i in range(0, len(raw), 1 << 20):
                decoder.decode(view[i:i + (1 << 20)], final=False)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        if enc != "utf-8-sig":
            log.info("the file is not UTF-8; decoded it as %s", enc)
        return enc
    log.info("the file is neither UTF-8 nor cp1252; decoded it as latin-1")
    return "latin-1"


def _check_header(text: str, sep: str) -> None:
    """Duplicate names in a delimited header are an error (pandas would rename them silently)."""
    first = next(csv.reader(io.StringIO(text[:1 << 20]), delimiter=sep), [])
    names = [n.strip() for n in first]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"duplicate column name(s) in the header: {', '.join(dup)}; rename them so each is unique")


def _flatten_nested(df: pd.DataFrame) -> pd.DataFrame:
    """Nested values (Parquet lists/structs, JSON objects) become JSON text, said in the log."""
    import json

    nested = []
    for col in df.columns:
        if df[col].dtype != object:
            continue
        sample = df[col].dropna().head(100)
        if len(sample) and sample.map(lambda v: isinstance(v, (list, dict, tuple, np.ndarray))).any():
            nested.append(col)
            df[col] = df[col].map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v))
                                  else json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, default=str,
                                                  sort_keys=True))
    if nested:
        log.info("nested column(s) %s stored as JSON text", ", ".join(map(str, nested)))
    return df


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
    enc = _encoding(raw)
    text = raw[:1 << 20].decode(enc, errors="ignore")  # a sample, to sniff the delimiter and header
    sep = _sniff_delimiter(text[:65536]) if fmt == "delimited" else ","
    if fmt == "csv":
        head = text[:65536].splitlines()[0] if text else ""
        if head.count(",") == 0 and (head.count(";") or head.count("\t")):
            sep = _sniff_delimiter(text[:65536])
    decimal = "," if sep == ";" else "."
    _check_header(text.lstrip("\ufeff"), sep)
    return pd.read_csv(io.BytesIO(raw), sep=sep, decimal=decimal, nrows=nrows, low_memory=False, encoding=enc)


def write_table(df: pd.DataFrame, path: str, storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Write CSV, or Parquet when the name ends in .parquet (gzip when it ends in .gz)."""
    fmt = table_format(path)
    _, compression = _strip_compression(path)
    with fsspec.open(path, "wb", compression=compression, auto_mkdir=True, **(storage_options or {})) as fh:
        if fmt == "parquet":
            df.to_parquet(fh, index=False)
        else:
            fh.write(df.to_csv(index=False).encode("utf-8"))
