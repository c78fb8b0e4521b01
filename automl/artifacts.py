"""The run folder: small fsspec helpers for reading and writing artifacts on any URL.

Every write is all-or-nothing (``atomic_open``): a local file is written under a hidden temporary
name in the same folder, flushed to disk and renamed into place; an object on an object store is
one upload that the store makes visible only when it completes, and is aborted on failure.
"""
from __future__ import annotations

import io
import json
import logging
import os
import posixpath
import re
import secrets
from typing import IO, Any, Dict, Optional, Tuple

import fsspec
import fsspec.compression
import yaml
from fsspec.implementations.local import LocalFileSystem

from automl.errors import ArtifactError

log = logging.getLogger(__name__)


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def write_bytes(url: str, data: bytes, storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Write ``data`` to ``url`` all-or-nothing (see ``atomic_open``)."""
    with atomic_open(url, "wb", storage_options) as fh:
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


def locate(url: str, storage_options: Optional[Dict[str, Any]] = None) -> Tuple[Any, str, str]:
    """(filesystem, protocol, path) of ``url``, for comparing two locations: local paths are resolved
    (links, ``..``, relative to the working folder), other paths normalised (``//``, trailing ``/``)."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if isinstance(fs, LocalFileSystem):
        return fs, protocol, os.path.realpath(path)
    return fs, protocol, posixpath.normpath("/" + path.strip("/")).lstrip("/")


def exists(url: str, storage_options: Optional[Dict[str, Any]] = None) -> bool:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs.exists(path)


# Stores where one upload becomes visible only when it completes, and can be aborted: s3fs completes
# its multipart upload (or single PUT) on close, gcsfs finalises its resumable upload, adlfs commits
# its block list. On these a file is written straight to its key; elsewhere through a temporary name.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
_TEMP_NAME = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]{8}$")


def temp_name(name: str) -> str:
    """A hidden name beside ``name`` that readers of a folder skip (they skip ``.`` names)."""
    return f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """Whether a file name (not a path) is one of ``temp_name``'s: what a ``kill -9`` can leave behind."""
    return bool(_TEMP_NAME.match(name))


class AtomicWriter:
    """A file at ``url`` that appears whole on ``commit()``, or not at all on ``discard()``.

    Local: written to ``.<name>.tmp-<pid>-<hex>`` in the target's folder, flushed and fsynced, then
    moved over the target with ``os.replace``; a ``kill -9`` can leave that hidden temp behind, never
    a partial file at ``url``. Object stores: one upload to the key itself, aborted on ``discard``.
    Other filesystems: a hidden temp beside the target, then ``fs.mv``.
    """

    def __init__(self, url: str, mode: str = "wb", storage_options: Optional[Dict[str, Any]] = None,
                 compression: Optional[str] = None):
        if mode not in ("wb", "w"):
            raise ValueError(f"atomic_open only writes ('wb' or 'w'); got mode {mode!r}")
        self.url, self.done = url, False
        self.fs, self.path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.direct = not self.local and bool(protocols & OBJECT_STORES)
        paths = os.path if self.local else posixpath
        parent, name = paths.split(self.path)
        self.parent = parent
        self.tmp = self.path if self.direct else paths.join(parent, temp_name(name))
        if self.local:
            os.makedirs(parent or ".", exist_ok=True)
            self.raw: IO[bytes] = open(self.tmp, "xb")
        else:
            self.fs.makedirs(parent, exist_ok=True)
            self.raw = self.fs.open(self.tmp, "wb")
        self.packed: Optional[IO[bytes]] = None
        self.text: Optional[io.TextIOWrapper] = None
        try:
            if compression:
                self.packed = fsspec.compression.compr[compression](self.raw, mode="wb")
            if mode == "w":
                self.text = io.TextIOWrapper(self.packed or self.raw, encoding="utf-8", newline="")
        except BaseException:
            self.discard()
            raise

    @property
    def fh(self) -> IO:
        """What to write to: text, compressed or raw bytes, as opened."""
        return self.text or self.packed or self.raw

    def _close_wrappers(self) -> None:
        if self.text is not None:
            self.text.detach()  # flushes into the layer below without closing it
            self.text = None
        if self.packed is not None:
            self.packed.close()  # writes the compression trailer; leaves ``raw`` open
            self.packed = None

    def commit(self) -> None:
        """Move the complete file into place (local: after fsync), or complete the upload."""
        if self.done:
            return
        try:
            self._close_wrappers()
            if self.local:
                self.raw.flush()
                os.fsync(self.raw.fileno())
                self.raw.close()
                os.replace(self.tmp, self.path)
                _fsync_folder(self.parent)
            else:
                self.raw.close()  # object stores: the upload completes here
                if not self.direct:
                    self.fs.mv(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self.done = True

    def discard(self) -> None:
        """Throw the partial file away; nothing appears at ``url``."""
        if self.done:
            return
        self.done = True
        try:
            self._close_wrappers()
        except Exception:  # the bytes are thrown away anyway
            pass
        if self.direct:
            abort = getattr(self.raw, "discard", None)
            if callable(abort):
                abort()  # s3fs: aborts the multipart upload
            try:
                self.raw.closed = True  # type: ignore[misc]  # never let close()/__del__ upload the rest
            except AttributeError:
                pass
            return
        try:
            self.raw.close()
        except Exception:
            pass
        try:
            if self.local:
                os.unlink(self.tmp)
            else:
                self.fs.rm(self.tmp)
        except (FileNotFoundError, OSError) as exc:
            log.warning("could not remove the temporary file %s: %s", self.tmp, exc)

    def __enter__(self) -> IO:
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def atomic_open(url: str, mode: str = "wb", storage_options: Optional[Dict[str, Any]] = None,
                compression: Optional[str] = None) -> AtomicWriter:
    """Open ``url`` for an all-or-nothing write: ``with atomic_open(url) as fh: fh.write(...)``.

    The file is opened here (so open errors come before the ``with`` body); leaving the block
    normally moves it into place, any exception (Ctrl-C included) throws it away.
    """
    return AtomicWriter(url, mode, storage_options, compression)


def _fsync_folder(folder: str) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(obj: Any):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
