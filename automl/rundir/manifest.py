"""The run folder's ``manifest.json``: a sha256 digest of every file, checked before use.

``write_manifest`` runs as the last step of ``automl fit`` and lists every file in the run
folder at that moment (files written after it are not covered; whoever adds files to a run
folder after a fit calls ``write_manifest`` again). It also records the library versions the
run was written under. Loading a model (``automl.load(...).model``, ``automl predict``,
``automl serve``) goes through ``load_verified_model``, and refit reads its inputs through
``read_verified``: both refuse a file whose digest differs from the manifest, a file the manifest
does not list, a path that leaves the run folder, and a run folder without a manifest. A digest
detects accidents, not attacks (whoever can rewrite a file can rewrite the manifest): what keeps a
model file from running code is its format, see automl/rundir/modelfile.py.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
from typing import Any, Dict, List, Optional

import fsspec

from automl import artifacts as art
from automl.errors import ArtifactError
from automl.rundir.layout import MANIFEST_FILE
from automl.rundir.lock import LOCK_FILE  # the run's lock is not part of the run
from automl.rundir.modelfile import is_legacy, library_versions, load_model_bytes, load_pickle_bytes, warn_versions

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
TRIAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_trial_id(trial_id: Any, where: str = "trial") -> str:
    """``trial_id`` as text, if it is safe in a path (letters, digits, ``_``, ``-``; 1-64 long)."""
    text = str(trial_id)
    if not TRIAL_ID_PATTERN.match(text):
        shown = text if len(text) <= 70 else text[:67] + "..."
        raise ArtifactError(f"{where}={shown!r} is not a valid trial id (1-64 letters, digits, '_' or '-'); "
                            "use a trial_id from the run's leaderboard.csv")
    return text


def check_rel_path(rel: str, run_dir: str) -> str:
    """``rel`` if it names a file inside the run folder (relative, no ``..``, no empty part)."""
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise ArtifactError(f"{rel!r} is not a path inside run folder {run_dir}; refusing to use it")
    return rel


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
    return sorted(r for r in rel if r and r not in (MANIFEST_FILE, LOCK_FILE))


def write_manifest(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Digest every file of the run folder into ``manifest.json``; returns the manifest."""
    fs, root = _fs(run_dir, storage_options)
    root = root.rstrip("/")
    files: Dict[str, Dict[str, Any]] = {}
    for rel in list_run_files(run_dir, storage_options):
        path = f"{root}/{rel}"
        files[rel] = {"sha256": _digest_file(fs, path), "size": int(fs.size(path))}
    manifest = {"algorithm": "sha256", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": library_versions(), "files": files}
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
    check_rel_path(rel, run_dir)
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


def read_verified(run_dir: str, rel: str, storage_options: Optional[Dict[str, Any]] = None,
                  manifest: Optional[Dict[str, Any]] = None) -> bytes:
    """The bytes of ``run_dir/rel``, after checking them against the manifest."""
    manifest = manifest or read_manifest(run_dir, storage_options)
    check_rel_path(rel, run_dir)
    if rel not in manifest["files"]:
        verify_bytes(run_dir, rel, b"", manifest)  # raises: not listed
    data = art.read_bytes(art.join(run_dir, rel), storage_options)
    verify_bytes(run_dir, rel, data, manifest)
    return data


def load_verified_model(run_dir: str, rel: str, storage_options: Optional[Dict[str, Any]] = None,
                        allow_pickle: bool = False) -> Any:
    """Read ``run_dir/rel``, check it against the manifest, then build the model: a skops file
    with trusted types only, or (``.pkl``, earlier releases) a pickle when ``allow_pickle``."""
    manifest = read_manifest(run_dir, storage_options)
    where = f"{rel} in {run_dir}"
    if is_legacy(rel) and not allow_pickle:
        load_pickle_bytes(b"", where, allow_pickle=False)  # raises before anything is read
    data = read_verified(run_dir, rel, storage_options, manifest)
    warn_versions(manifest.get("versions") or {}, f"run {run_dir}")
    if is_legacy(rel):
        return load_pickle_bytes(data, where, allow_pickle)
    return load_model_bytes(data, where)


def add_to_manifest(run_dir: str, rel: str, data: bytes, storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Write ``data`` to ``run_dir/rel`` and list it in the manifest (only this entry is added:
    files changed by anyone else after the fit stay unlisted or mismatched, and are still refused)."""
    check_rel_path(rel, run_dir)
    manifest = read_manifest(run_dir, storage_options)
    art.write_bytes(art.join(run_dir, rel), data, storage_options)
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    art.write_json(art.join(run_dir, MANIFEST_FILE), manifest, storage_options)


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

