"""One lister for a folder or prefix of data files, on a local path or any fsspec URL (batch
predict's ``input=`` and monitor's ``data=``).

``url`` is a file (itself), a folder (every file below it), or a prefix (every file whose path
starts with it, and every file below a folder that does). Hidden ``.``/``_`` names (``_SUCCESS``
markers, dotfiles) and automl's temporary names are never data. Files come sorted by path, which
is the order batch predict writes their rows in.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import fsspec

from automl.data.formats import TABLE_SUFFIXES, is_hidden_name, is_table_name
from automl.errors import DataError, storage_failure


def list_files(url: str, storage_options: Optional[Dict[str, Any]] = None, what: str = "data",
               tables_only: bool = False, allow_empty: bool = False) -> List[str]:
    """The data files at ``url`` in the form of ``url`` (a URL stays a URL).

    ``tables_only`` keeps only names ending in one of ``TABLE_SUFFIXES`` (optionally compressed);
    otherwise any visible file is data (e.g. Hadoop's suffix-less ``part-00000``). ``what`` names
    the key in errors; ``allow_empty`` returns [] where there is nothing instead of refusing.
    """
    if not url:
        raise DataError(f"{what} is empty; give a file, folder or prefix, e.g. {what}=s3://bucket/batch/")
    try:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if fs.isfile(path):
            return [url]
        if fs.isdir(path):
            found = fs.find(path)
        else:
            found = [f for p in fs.glob(path.rstrip("/") + "*") for f in (fs.find(p) if fs.isdir(p) else [p])]
    except Exception as exc:  # storage, credential and URL failures come in many types
        known = storage_failure(exc, url, what)
        raise known or DataError(f"{what}: cannot list {url}: {type(exc).__name__}: {exc}") from None
    files = sorted(f for f in found if (is_table_name(f) if tables_only else not is_hidden_name(f.rsplit("/", 1)[-1])))
    if not files and not allow_empty:
        if tables_only:
            raise DataError(f"{what}: nothing to read at {url} (no such file, and no folder or prefix of data files); "
                            f"give a file, or a folder or prefix of {', '.join(TABLE_SUFFIXES)} files (optionally .gz)")
        raise DataError(f"{what}: no files at {url}; give a file, or a folder/prefix that holds data files")
    return [fs.unstrip_protocol(f) if "://" in url else f for f in files]
