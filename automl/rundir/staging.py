"""Where a fit writes, and how it replaces an earlier run.

* A new or empty output_dir, or ``resume=true``: the fit writes the run folder in place (a
  crash leaves a folder that ``resume=true`` continues).
* An output_dir that already holds files: refused, unless ``resume=true`` or ``overwrite=true``.
* ``overwrite=true`` over an earlier run: the new run is written to a staging folder next to it,
  ``.<name>.automl-new-<id>``, and swapped into place only when complete (manifest written). Until
  then the earlier run stays as it was, so a failure or a kill at any moment leaves it intact.

The swap on local disk is one ``renameat2(RENAME_EXCHANGE)`` (Linux): the folder is always either
the complete earlier run or the complete new one. Elsewhere it is two renames; a kill between them
leaves the earlier run at ``.<name>.automl-old-<id>``, which the next fit into that folder puts
back. Object stores have no rename: the swap deletes the earlier run's ``manifest.json`` first,
then its files, copies the new files in and the new manifest last. A kill during that copy leaves
a folder without a manifest, which ``predict``, ``serve`` and ``load`` refuse, never a silent mix
of two runs; the complete new run is still in the staging folder.
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import uuid
from typing import Any, Dict, List

import fsspec

from automl.errors import ConfigError
from automl.rundir.layout import CONFIG_FILE, MANIFEST_FILE, STATE_FILE, SUMMARY_FILE
from automl.rundir.lock import LOCK_FILE, RunLock

log = logging.getLogger(__name__)

RUN_MARKERS = (STATE_FILE, MANIFEST_FILE, SUMMARY_FILE, CONFIG_FILE)  # any one: an automl run folder
NEW_TAG, OLD_TAG = ".automl-new-", ".automl-old-"


def _fs(url: str, so: Dict[str, Any]):
    fs, path = fsspec.core.url_to_fs(url, **so)
    return fs, path.rstrip("/")


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return bool({"file", "local"} & set(protocols))


def contents(out: str, so: Dict[str, Any]) -> List[str]:
    """Names directly under ``out``, the lock file left out; [] when it does not exist."""
    fs, path = _fs(out, so)
    try:
        fs.invalidate_cache()
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(path, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if n and n != LOCK_FILE)


def check_output_dir(out: str, so: Dict[str, Any], resume: bool, overwrite: bool) -> bool:
    """Refuse an output_dir that holds files unless the config says what to do with them;
    True when an earlier run there is to be replaced (``overwrite=true``). Reads only."""
    names = contents(out, so)
    if not names:
        return False
    is_run = any(m in names for m in RUN_MARKERS)
    if resume:
        if STATE_FILE not in names:
            raise ConfigError(f"resume=true, but output_dir {out} holds no {STATE_FILE}, so there is no run "
                              "to continue; pass overwrite=true to replace it, or another output_dir")
        return False
    if overwrite and is_run:
        return True
    if overwrite:
        raise ConfigError(f"output_dir {out} holds files but no automl run ({', '.join(names[:5])}); "
                          "overwrite=true only replaces a run folder: choose a new or empty output_dir")
    what = "an automl run" if is_run else f"files ({', '.join(names[:5])})"
    raise ConfigError(f"output_dir {out} already holds {what}; nothing was changed. Pass resume=true to "
                      "continue it, overwrite=true to replace it, or another output_dir")


def _siblings(out: str, so: Dict[str, Any]) -> List[str]:
    """Staging and set-aside folders of earlier fits into ``out`` (``.<name>.automl-*``)."""
    fs, path = _fs(out, so)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    try:
        fs.invalidate_cache()
        entries = fs.ls(parent or ".", detail=False)
    except FileNotFoundError:
        return []
    prefix = f".{name}."
    return [e.rstrip("/") for e in entries
            if e.rstrip("/").rsplit("/", 1)[-1].startswith(prefix)
            and (NEW_TAG in e or OLD_TAG in e)]


def clean_leftovers(out: str, so: Dict[str, Any], lock: RunLock) -> None:
    """Remove what killed fits into ``out`` left next to it; call while holding out's lock (only a
    holder of that lock creates them). An earlier run set aside by an unfinished local swap is put
    back first, with this run's lock record."""
    fs, path = _fs(out, so)
    for sib in _siblings(out, so):
        if OLD_TAG in sib and _is_local(fs) and not contents(out, so):
            log.warning("putting back the earlier run %s that an interrupted fit had set aside", sib)
            shutil.rmtree(path, ignore_errors=True)
            os.rename(sib, path)
            tmp = os.path.join(path, f".{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(lock.record())
            os.replace(tmp, os.path.join(path, LOCK_FILE))
            continue
        log.info("removing %s, left by an interrupted fit", sib)
        fs.rm(sib, recursive=True)


def _exchange(a: str, b: str) -> bool:
    """Swap two local paths in one step (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), a)


class Workspace:
    """Where this fit writes (``dir``): ``out`` itself, or a staging folder next to it that
    ``publish`` swaps into place."""

    def __init__(self, out: str, so: Dict[str, Any], replace: bool):
        self.out = out
        self.so = dict(so)
        self.replace = replace
        self.dir = out
        if replace:
            fs, path = _fs(out, so)
            parent, name = path.rsplit("/", 1)
            staged = f"{parent}/.{name}{NEW_TAG}{uuid.uuid4().hex[:8]}"
            base = out.rstrip("/")
            self.dir = staged if _is_local(fs) else base[: len(base) - len(name)] + staged.rsplit("/", 1)[1]
            log.info("building the new run in %s; the earlier run in %s stays as it is until it is complete",
                     self.dir, out)

    def publish(self, lock: RunLock) -> None:
        """Put the complete new run in place of the earlier one (nothing to do when in place)."""
        if not self.replace:
            return
        lock.check()
        fs, path = _fs(self.out, self.so)
        _, staged = _fs(self.dir, self.so)
        if _is_local(fs):
            self._swap_local(fs, path, staged, lock)
        else:
            self._swap_copy(fs, path, staged)
        log.info("replaced the earlier run in %s", self.out)

    def _swap_local(self, fs, path: str, staged: str, lock: RunLock) -> None:
        with open(os.path.join(staged, LOCK_FILE), "wb") as fh:  # the lock goes with the new run
            fh.write(lock.record())
        if not _exchange(staged, path):
            aside = staged.replace(NEW_TAG, OLD_TAG)
            os.rename(path, aside)
            os.rename(staged, path)
            staged = aside
        shutil.rmtree(staged, ignore_errors=True)

    def _swap_copy(self, fs, path: str, staged: str) -> None:
        fs.invalidate_cache()
        if fs.exists(f"{path}/{MANIFEST_FILE}"):
            fs.rm_file(f"{path}/{MANIFEST_FILE}")  # from here on readers refuse the folder
        old = [f for f in fs.find(path) if f.rsplit("/", 1)[-1] != LOCK_FILE]
        if old:
            fs.rm(old)
        new = [f for f in fs.find(staged) if not f.endswith(f"/{MANIFEST_FILE}")]
        if new:
            fs.copy(new, [path + f[len(staged):] for f in new])
        fs.copy(f"{staged}/{MANIFEST_FILE}", f"{path}/{MANIFEST_FILE}")  # last: the run is complete
        fs.rm(staged, recursive=True)

    def discard(self) -> None:
        """Remove an unfinished staging folder (the earlier run is untouched)."""
        if self.replace:
            fs, staged = _fs(self.dir, self.so)
            try:
                fs.rm(staged, recursive=True)
            except FileNotFoundError:
                pass
            except Exception as exc:  # never mask the run's own error
                log.warning("could not remove the staging folder %s: %s", self.dir, exc)


def remove_if_empty(out: str, so: Dict[str, Any]) -> None:
    """Remove ``out`` if it is an empty local folder (a first fit that failed before writing)."""
    fs, path = _fs(out, so)
    if _is_local(fs):
        try:
            os.rmdir(path)  # only ever removes an empty folder
        except OSError:
            pass
