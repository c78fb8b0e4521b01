"""summary.json as a typed record: the one reader of a run's summary.

``RunSummary`` gives typed access to the keys every reader needs (problem, target, features,
classes, the chosen model) and stays a read-only mapping over the whole file, so keys written by
newer code (``test_metrics``, ``attempts``, ...) are still reachable with ``summary["key"]`` and
``summary.get("key")``. ``problem_info()`` rebuilds the fit's :class:`automl.problem.ProblemInfo`
in one place (refit and the report each rebuilt it by hand before).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from automl import artifacts as art
from automl.errors import ArtifactError
from automl.rundir.layout import SUMMARY_FILE

if TYPE_CHECKING:  # the problem module sits above the run folder's
    from automl.problem import ProblemInfo


@dataclass(frozen=True)
class BestRecord:
    """summary.json's ``best``: the final model (one trial, or an ensemble of several)."""

    trial_id: str
    candidate: str
    score: Optional[float]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> Optional["BestRecord"]:
        if not d:
            return None
        score = d.get("score")
        return cls(trial_id=str(d.get("trial_id")), candidate=str(d.get("candidate")),
                   score=None if score is None else float(score), raw=dict(d))


class RunSummary(Mapping):
    """A finished (or candidates-only) run's summary.json: typed fields plus every key as written."""

    def __init__(self, data: Dict[str, Any]):
        missing = [k for k in ("problem_type", "metric", "target") if k not in data]
        if missing:
            raise ArtifactError(f"{SUMMARY_FILE} lacks {', '.join(missing)}; it was not written by `automl fit`")
        self._data = dict(data)

    # the mapping: every key as the file has it
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"RunSummary(problem_type={self.problem_type!r}, metric={self.metric!r}, best={self.best!r})"

    def to_dict(self) -> Dict[str, Any]:
        """A plain copy, e.g. for json.dumps."""
        return dict(self._data)

    # typed fields
    @property
    def problem_type(self) -> str:
        return str(self._data["problem_type"])

    @property
    def metric(self) -> str:
        return str(self._data["metric"])

    @property
    def greater_is_better(self) -> bool:
        return bool(self._data.get("greater_is_better", True))

    @property
    def target(self) -> str:
        return str(self._data["target"])

    @property
    def features(self) -> List[str]:
        return list(self._data.get("features") or [])

    @property
    def column_types(self) -> Dict[str, str]:
        return dict(self._data.get("column_types") or {})

    @property
    def classes(self) -> List[Any]:
        return list(self._data.get("classes") or [])

    @property
    def positive_class(self) -> Any:
        return self._data.get("positive_class")

    @property
    def mode(self) -> str:
        return str(self._data.get("mode", "full"))

    @property
    def best(self) -> Optional[BestRecord]:
        return BestRecord.from_dict(self._data.get("best"))

    @property
    def test_score(self) -> Optional[float]:
        v = self._data.get("test_score")
        return None if v is None else float(v)

    def problem_info(self) -> "ProblemInfo":
        """The fit's ProblemInfo, as the search used it (target encoding, metric direction)."""
        from automl.problem import ProblemInfo

        return ProblemInfo(problem_type=self.problem_type, metric=self.metric,
                           greater_is_better=self.greater_is_better,
                           reason=str(self._data.get("problem_type_reason", "")),
                           classes=self.classes, positive_class=self.positive_class)


def summary_url(run_dir: str) -> str:
    return art.join(run_dir, SUMMARY_FILE)


def has_summary(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> bool:
    return art.exists(summary_url(run_dir), storage_options or {})


def read_summary(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> RunSummary:
    """The run's summary.json; a one-line ArtifactError if the folder holds none."""
    so = storage_options or {}
    if not has_summary(run_dir, so):
        raise ArtifactError(f"run_dir {run_dir} holds no {SUMMARY_FILE}; pass the folder of a finished "
                            f"`automl fit` run")
    return RunSummary(art.read_json(summary_url(run_dir), so))


def parse_summary(raw: bytes) -> RunSummary:
    """A summary.json already read (e.g. checked against the manifest)."""
    import json

    return RunSummary(json.loads(raw))


def write_summary(run_dir: str, summary: Mapping, storage_options: Optional[Dict[str, Any]] = None) -> RunSummary:
    """Write summary.json (atomically, as every run-folder file); checks the keys readers rely on."""
    record = RunSummary(dict(summary))
    art.write_json(summary_url(run_dir), record.to_dict(), storage_options or {})
    return record
