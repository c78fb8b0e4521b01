"""The rules every reader of a table follows: fit, batch predict and monitor alike.

One place decides, from a file's name and bytes:

- its **compression** (by suffix: ``.gz``, ``.bz2``, ``.zip``, ``.xz``) and **format** (Parquet,
  Excel, JSON Lines, delimited text; anything else is CSV);
- which names in a folder are **data** (hidden ``.``/``_`` names and automl's temporary names never
  are; ``TABLE_SUFFIXES`` where only table files are wanted);
- a text file's **encoding**: a BOM decides (UTF-8/16/32), else UTF-8 when the *whole* file decodes
  as UTF-8, else cp1252 when it decodes as cp1252, else latin-1;
- its **delimiter** and decimal mark (sniffed from the first MiB: ``;`` means a decimal comma);
- its **missing-value markers** (``MISSING_MARKERS``, pandas' defaults, pinned here);
- and what a parsed frame looks like: unique header names, stripped of surrounding spaces, and
  nested values (lists, objects) as JSON text.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
import pandas as pd

from automl.artifacts import is_temp_name
from automl.errors import DataError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".parquet", ".pq", ".xlsx", ".xls", ".jsonl", ".json")
COMPRESSIONS = ((".gz", "gzip"), (".bz2", "bz2"), (".zip", "zip"), (".xz", "xz"))
# pandas' default missing-value markers, pinned so that every reader (and a pandas upgrade) agrees
MISSING_MARKERS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                   "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
SAMPLE_BYTES = 1 << 20  # the head a delimiter and header are read from
BLOCK_BYTES = 1 << 20  # the encoding check decodes a file in blocks of this size
_SNIFF_CHARS = 65536
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_FORMATS = ((".parquet", "parquet"), (".pq", "parquet"), (".xlsx", "excel"), (".xls", "excel"),
            (".jsonl", "jsonl"), (".json", "jsonl"), (".tsv", "delimited"), (".txt", "delimited"))


# -- names ---------------------------------------------------------------------------------------

def split_compression(path: str) -> Tuple[str, Optional[str]]:
    """The lower-cased name without its compression suffix, and the compression (or None)."""
    lower = path.lower()
    for suffix, comp in COMPRESSIONS:
        if lower.endswith(suffix):
            return lower[: -len(suffix)], comp
    return lower, None


def compression_of(path: str) -> Optional[str]:
    """``gzip``, ``bz2``, ``zip`` or ``xz`` by the name's suffix; None for none."""
    return split_compression(path)[1]


def table_format(path: str) -> str:
    """``parquet``, ``excel``, ``jsonl``, ``delimited`` (TSV/TXT: delimiter sniffed) or ``csv``."""
    base, _ = split_compression(path)
    for suffix, fmt in _FORMATS:
        if base.endswith(suffix):
            return fmt
    return "csv"


def is_hidden_name(name: str) -> bool:
    """A file name (not a path) no reader takes as data: ``.``/``_`` names (``_SUCCESS``, dotfiles)
    and the temporary names of ``automl.artifacts`` (what an interrupted write leaves behind)."""
    return name.startswith((".", "_")) or is_temp_name(name)


def is_table_name(path: str) -> bool:
    """A visible file whose name (compression suffix aside) is one of ``TABLE_SUFFIXES``."""
    name = path.rsplit("/", 1)[-1]
    return not is_hidden_name(name) and split_compression(name)[0].endswith(TABLE_SUFFIXES)


# -- text: encoding, delimiter, header ------------------------------------------------------------

def detect_encoding(head: bytes, blocks: Callable[[], Iterable[bytes]]) -> str:
    """The encoding of a text file whose first bytes are ``head``: a BOM decides (UTF-8/16/32),
    else UTF-8 when the whole file decodes as UTF-8, then cp1252, then latin-1.

    ``blocks()`` gives one pass over the whole content (``head`` included) in blocks, decoded
    incrementally: a large file is never held twice (or, read in chunks, at all) in memory, and
    a file decodes the same whether it is read whole or in chunks.
    """
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc
    if b"\x00" in head[:65536]:
        raise DataError("does not look like a text table (it holds binary NUL bytes); give CSV, TSV, "
                        "Parquet, Excel or JSON Lines, or name the file by its format (.parquet, .xlsx)")
    for enc in ("utf-8-sig", "cp1252"):
        decoder = codecs.getincrementaldecoder(enc)()
        try:
            for block in blocks():
                decoder.decode(block, final=False)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        if enc != "utf-8-sig":
            log.info("the file is not UTF-8; decoded it as %s", enc)
        return enc
    log.info("the file is neither UTF-8 nor cp1252; decoded it as latin-1")
    return "latin-1"


def memory_blocks(raw: bytes) -> Callable[[], Iterator[memoryview]]:
    """``detect_encoding``'s passes over bytes already in memory (views, no copies)."""
    view = memoryview(raw)
    return lambda: (view[i:i + BLOCK_BYTES] for i in range(0, len(raw), BLOCK_BYTES))


def sniff_delimiter(sample: str) -> str:
    """The delimiter among ``, ; tab | space`` that ``csv.Sniffer`` finds; a comma when it finds none."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
    except csv.Error:
        return ","


@dataclass(frozen=True)
class TextLayout:
    """How to parse one delimited text file."""

    encoding: str
    sep: str
    decimal: str

    def read_csv_options(self) -> Dict[str, Any]:
        """Keyword arguments of ``pandas.read_csv``, the same for a whole file and for chunks."""
        return {"sep": self.sep, "decimal": self.decimal, "encoding": self.encoding, "low_memory": False,
                "na_values": list(MISSING_MARKERS), "keep_default_na": False}


def text_layout(head: bytes, encoding: str, fmt: str) -> TextLayout:
    """Encoding, delimiter and decimal mark of a text file from its first ``SAMPLE_BYTES``.

    A ``.tsv``/``.txt`` file is always sniffed; a CSV is sniffed only when its first line holds
    no comma but a semicolon or tab. Duplicate header names are an error.
    """
    text = head[:SAMPLE_BYTES].decode(encoding, errors="ignore")
    sep = sniff_delimiter(text[:_SNIFF_CHARS]) if fmt == "delimited" else ","
    if fmt == "csv":
        first = text[:_SNIFF_CHARS].splitlines()[0] if text else ""
        if first.count(",") == 0 and (first.count(";") or first.count("\t")):
            sep = sniff_delimiter(text[:_SNIFF_CHARS])
    check_header(text.lstrip("\ufeff"), sep)
    return TextLayout(encoding=encoding, sep=sep, decimal="," if sep == ";" else ".")


def check_header(text: str, sep: str) -> None:
    """Duplicate names in a delimited header are an error (pandas would rename them silently)."""
    first = next(csv.reader(io.StringIO(text[:SAMPLE_BYTES]), delimiter=sep), [])
    names = [n.strip() for n in first]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"duplicate column name(s) in the header: {', '.join(dup)}; rename them so each is unique")


# -- a parsed frame ------------------------------------------------------------------------------

def tidy_frame(df: pd.DataFrame, source: str = "", quiet: bool = False) -> pd.DataFrame:
    """Column names as text without surrounding spaces, and nested values as JSON text."""
    names = [str(c).strip() for c in df.columns]
    if names != [str(c) for c in df.columns] and not quiet:
        log.info("stripped spaces around column names in %s", source)
    df.columns = names
    return flatten_nested(df, quiet)


def flatten_nested(df: pd.DataFrame, quiet: bool = False) -> pd.DataFrame:
    """Nested values (Parquet lists/structs, JSON objects) become JSON text, said in the log."""
    nested = []
    for col in df.columns:
        if df[col].dtype != object:
            continue
        sample = df[col].dropna().head(100)
        if len(sample) and sample.map(lambda v: isinstance(v, (list, dict, tuple, np.ndarray))).any():
            nested.append(col)
            df[col] = df[col].map(_json_text)
    if nested and not quiet:
        log.info("nested column(s) %s stored as JSON text", ", ".join(map(str, nested)))
    return df


def _json_text(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return v
    return json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, default=str, sort_keys=True)
