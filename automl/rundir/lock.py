"""The run folder's lock: one `automl fit` (or resume) writes a run folder at a time.

``<run folder>/automl.lock`` is a small JSON record of its holder: host, PID (and that process's
start time, so a reused PID is not mistaken for the holder), when the run took the lock, and a
heartbeat time that a thread refreshes every ``HEARTBEAT_S`` while the run goes on. A lock is
*stale*, and the next run takes it over with a logged warning, when

* its holder ran on this host and that process is gone, or
* its heartbeat is older than ``STALE_AFTER_S`` (a holder on another host, or one that hangs).

How atomic taking the lock is depends on the store:

* local disk: the record is written to a private name, then hard-linked to ``automl.lock``
  (``link`` fails if the name exists: exactly one run wins, and a reader never sees half a
  record); a stale lock is first renamed aside, which only one run can do.
* S3: a conditional create (``PUT`` with ``If-None-Match: *``), and a stale lock is replaced with
  ``If-Match: <its ETag>``. Stores that ignore these headers (some S3-compatible servers) give no
  such guarantee: two runs that start within the same second may then both believe they hold it.
* any other fsspec store: check, then write; the same limit.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import fsspec

from automl import artifacts as art
from automl.errors import ArtifactError

log = logging.getLogger(__name__)

LOCK_FILE = "automl.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # 20 missed heartbeats


def _process_start(pid: int) -> float:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # no psutil, or no such process
        return 0.0


def _pid_alive(pid: int, started: float) -> bool:
    """Whether ``pid`` runs on this host and is the process that started at ``started``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    now_started = _process_start(pid)
    return not (started and now_started and abs(now_started - started) > 1.0)


@dataclass
class LockInfo:
    """The holder of a run folder's lock."""

    host: str
    pid: int
    pid_started: float
    since: float
    heartbeat: float
    token: str

    @classmethod
    def mine(cls) -> "LockInfo":
        now = time.time()
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()), now, now, uuid.uuid4().hex)

    @classmethod
    def parse(cls, data: bytes) -> Optional["LockInfo"]:
        try:
            d = json.loads(data)
            return cls(str(d["host"]), int(d["pid"]), float(d.get("pid_started", 0.0)), float(d["since"]),
                       float(d["heartbeat"]), str(d["token"]))
        except Exception:  # unreadable: judged by the file's age alone
            return None

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    def describe(self) -> str:
        since = _dt.datetime.fromtimestamp(self.since).astimezone().isoformat(timespec="seconds")
        return f"host {self.host}, pid {self.pid}, since {since}"

    def stale_reason(self, stale_after_s: float) -> Optional[str]:
        """Why this lock no longer protects a live run, or None while it does."""
        if self.host == socket.gethostname() and not _pid_alive(self.pid, self.pid_started):
            return "its process is gone"
        age = time.time() - self.heartbeat
        if age > stale_after_s:
            return f"no heartbeat for {age:.0f} s"
        return None


class _Store:
    """Create, read, replace and delete one small object, as atomically as the store allows."""

    def __init__(self, url: str, storage_options: Dict[str, Any]):
        self.url = url
        self.fs, self.path = fsspec.core.url_to_fs(url, **storage_options)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.kind = "local" if {"file", "local"} & set(protocols) else "s3" if {"s3", "s3a"} & set(protocols) \
            else "other"

    def create(self, data: bytes) -> bool:
        """Write ``data`` unless the object exists; True when this call created it."""
        if self.kind == "local":
            return self._create_local(data)
        if self.kind == "s3":
            try:
                self.fs.pipe_file(self.path, data, mode="create")
                return True
            except FileExistsError:
                return False
        self.fs.invalidate_cache()
        if self.fs.exists(self.path):
            return False
        self.fs.pipe_file(self.path, data)
        return True

    def _create_local(self, data: bytes) -> bool:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(self.path), f".{LOCK_FILE}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FAT disks): exclusive create instead
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        finally:
            os.unlink(tmp)

    def read(self) -> Optional[Tuple[bytes, str, float]]:
        """The object's bytes, its version (S3: the ETag) and its modification time; None if absent."""
        try:
            if self.kind == "local":
                with open(self.path, "rb") as fh:
                    return fh.read(), "", os.stat(self.path).st_mtime
            self.fs.invalidate_cache()
            info = self.fs.info(self.path)
            mtime = info.get("LastModified") or info.get("mtime") or 0.0
            mtime = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime or 0.0)
            return self.fs.cat_file(self.path), str(info.get("ETag", "")), mtime
        except FileNotFoundError:
            return None

    def replace(self, data: bytes, version: str, token: Optional[str]) -> bool:
        """Overwrite the object if it is still the one read (S3: ``version``; local disk: the
        record with ``token``); False when someone else changed it meanwhile."""
        if self.kind == "s3":
            try:
                self.fs.pipe_file(self.path, data, IfMatch=version)
                return True
            except OSError:
                return False
        if self.kind == "local":
            aside = os.path.join(os.path.dirname(self.path), f".{LOCK_FILE}.{uuid.uuid4().hex}.stale")
            try:
                os.rename(self.path, aside)  # only one run can move a given record aside
            except FileNotFoundError:
                return False
            with open(aside, "rb") as fh:
                held = LockInfo.parse(fh.read())
            if token is not None and (held is None or held.token != token):
                try:  # not the record judged stale: put it back
                    os.link(aside, self.path)
                except OSError:
                    pass
                os.unlink(aside)
                return False
            os.unlink(aside)
            return self._create_local(data)
        self.fs.pipe_file(self.path, data)
        return True

    def overwrite(self, data: bytes) -> None:
        """Rewrite the object in one step (the holder's heartbeat)."""
        if self.kind == "local":
            tmp = os.path.join(os.path.dirname(self.path), f".{LOCK_FILE}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path)
        else:
            self.fs.pipe_file(self.path, data)

    def delete(self) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            pass


def held_message(run_dir: str, holder: Optional[LockInfo], url: str) -> str:
    who = holder.describe() if holder else "a holder whose lock record cannot be read"
    return (f"output_dir {run_dir} is in use by another automl run ({who}); wait for it to finish, "
            f"or use another output_dir. If that run is gone for good, delete {url}")


class RunLock:
    """``with RunLock(run_dir, storage_options):`` holds the run folder's lock for the block,
    and releases it however the block ends (success, error or Ctrl-C)."""

    def __init__(self, run_dir: str, storage_options: Optional[Dict[str, Any]] = None,
                 stale_after_s: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S):
        self.run_dir = run_dir
        self.url = art.join(run_dir, LOCK_FILE)
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.info = LockInfo.mine()
        self.lost: Optional[str] = None
        self._store = _Store(self.url, dict(storage_options or {}))
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._held = False

    def acquire(self) -> "RunLock":
        """Take the lock, or raise ArtifactError naming its live holder."""
        for _ in range(5):
            if self._store.create(self.info.to_bytes()):
                return self._start()
            found = self._store.read()
            if found is None:  # released meanwhile: try again
                continue
            data, version, mtime = found
            holder = LockInfo.parse(data)
            if holder is not None:
                why = holder.stale_reason(self.stale_after_s)
            else:
                why = f"unreadable, unchanged for {time.time() - mtime:.0f} s" \
                    if time.time() - mtime > self.stale_after_s else None
            if why is None:
                raise ArtifactError(held_message(self.run_dir, holder, self.url))
            log.warning("taking over the stale lock of %s (%s): %s", self.run_dir,
                        holder.describe() if holder else "unreadable", why)
            if self._store.replace(self.info.to_bytes(), version, holder.token if holder else None):
                return self._start()
        raise ArtifactError(f"could not take the lock {self.url}: other runs keep changing it; "
                            "make sure only one automl run writes this output_dir, then try again")

    def _start(self) -> "RunLock":
        self._held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat_loop, name="automl-run-lock", daemon=True)
        self._thread.start()
        return self

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.beat():
                return

    def beat(self) -> bool:
        """Refresh the heartbeat; False (and ``lost`` set) when another run took the lock over."""
        try:
            found = self._store.read()
            holder = LockInfo.parse(found[0]) if found else None
            if holder is None or holder.token != self.info.token:
                self.lost = held_message(self.run_dir, holder, self.url)
                log.error("lost the lock of %s: %s", self.run_dir, self.lost)
                return False
            self.info.heartbeat = time.time()
            self._store.overwrite(self.info.to_bytes())
        except Exception as exc:  # a storage hiccup: the next beat tries again
            log.warning("could not refresh the lock %s: %s", self.url, exc)
        return True

    def check(self) -> None:
        """Raise ArtifactError if another run took this lock over (then this run must not publish)."""
        if self.lost:
            raise ArtifactError(f"this run lost its lock: {self.lost}")

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still this run's."""
        if not self._held:
            return
        self._held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            found = self._store.read()
            holder = LockInfo.parse(found[0]) if found else None
            if holder is not None and holder.token == self.info.token:
                self._store.delete()
        except Exception as exc:  # never mask the run's own outcome
            log.warning("could not release the lock %s: %s", self.url, exc)

    def record(self) -> bytes:
        """This run's lock record (a staging folder carries a copy through the swap)."""
        return self.info.to_bytes()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
