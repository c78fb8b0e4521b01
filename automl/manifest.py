"""The run folder's ``manifest.json``: a sha256 digest of every file, checked before use.

``write_manifest`` runs as the last step of ``automl fit`` and lists every file in the run
folder at that moment (files written after it are not covered; whoever adds files to a run
folder after a fit calls ``write_manifest`` again). Loading a model (``automl.load(...).model``,
``automl predict``, ``automl serve``) goes through ``load_verified_pickle``, which refuses a
file whose digest differs from the manifest, a model file the manifest does not list, and a
run folder without a manifest: a pickle is code, so only files the fit wrote are loaded.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import pickle
from typing import Any, Dict, List, Optional

import fsspec

from automl import artifacts as art
from automl.errors import ArtifactError

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
_CHUNK = 1 << 20


def _fs(run_dir: str, storage_options: Optional[Dict[str, Any]]):
    return fsspec.core.url_to_fs(run_dir, **(storage_options or {}))


def _digest_file(fs, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while True:
            block = fh.read(_CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def list_run_files(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> List[str]:
    """Every file under the run folder, as paths relative to it (``/``-separated, sorted)."""
    fs, root = _fs(run_dir, storage_options)
    root = root.rstrip("/")
    try:
        fs.invalidate_cache()
    except Exception:  # pragma: no cover - some filesystems keep no cache
        pass
    files = fs.find(root)
    rel = []
    for f in files:
        f = f.rstrip("/")
        if not f.startswith(root + "/"):
            continue
        rel.append(f[len(root) + 1:])
    return sorted(r for r in rel if r and r != MANIFEST_FILE)


def write_manifest(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Digest every file of the run folder into ``manifest.json``; returns the manifest."""
    fs, root = _fs(run_dir, storage_options)
    root = root.rstrip("/")
    files: Dict[str, Dict[str, Any]] = {}
    for rel in list_run_files(run_dir, storage_options):
        path = f"{root}/{rel}"
        files[rel] = {"sha256": _digest_file(fs, path), "size": int(fs.size(path))}
    manifest = {"algorithm": "sha256", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "files": files}
    art.write_json(art.join(run_dir, MANIFEST_FILE), manifest, storage_options)
    log.info("manifest.json: sha256 of %d file(s)", len(files))
    return manifest


def read_manifest(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    url = art.join(run_dir, MANIFEST_FILE)
    if not art.exists(url, storage_options):
        raise ArtifactError(
            f"run folder {run_dir} has no {MANIFEST_FILE}, so its model files cannot be verified; "
            "use a run folder written by a complete `automl fit` (or refit)"
        )
    try:
        manifest = art.read_json(url, storage_options)
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{url} is not a valid manifest ({type(exc).__name__}: {exc}); refit the run") from None
    return manifest


def verify_bytes(run_dir: str, rel: str, data: bytes, manifest: Dict[str, Any]) -> None:
    """Raise ArtifactError unless ``data`` is exactly what the manifest recorded for ``rel``."""
    entry = manifest["files"].get(rel)
    if entry is None:
        raise ArtifactError(
            f"{rel} in {run_dir} is not listed in {MANIFEST_FILE}; refusing to load a file the fit did not write"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256"):
        raise ArtifactError(
            f"{rel} in {run_dir} fails its sha256 check (expected {str(entry.get('sha256'))[:12]}…, "
            f"got {digest[:12]}…): the file was modified after the fit; refusing to load it"
        )


def load_verified_pickle(run_dir: str, rel: str, storage_options: Optional[Dict[str, Any]] = None) -> Any:
    """Read ``run_dir/rel``, check it against the manifest, then unpickle it."""
    manifest = read_manifest(run_dir, storage_options)
    data = art.read_bytes(art.join(run_dir, rel), storage_options)
    verify_bytes(run_dir, rel, data, manifest)
    return pickle.loads(data)


def verify_run(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, List[str]]:
    """Check every listed file; returns ``{"ok": [...], "modified": [...], "missing": [...],
    "unlisted": [...]}`` (unlisted: files added after the manifest was written)."""
    manifest = read_manifest(run_dir, storage_options)
    fs, root = _fs(run_dir, storage_options)
    root = root.rstrip("/")
    report: Dict[str, List[str]] = {"ok": [], "modified": [], "missing": [], "unlisted": []}
    present = set(list_run_files(run_dir, storage_options))
    for rel, entry in sorted(manifest["files"].items()):
        if rel not in present:
            report["missing"].append(rel)
        elif _digest_file(fs, f"{root}/{rel}") != entry.get("sha256"):
            report["modified"].append(rel)
        else:
            report["ok"].append(rel)
    report["unlisted"] = sorted(present - set(manifest["files"]))
    return report

