"""Turn the ``candidates`` config into concrete candidates for this data, saying why."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List

from omegaconf import DictConfig, OmegaConf

from automl.candidates.algorithms import get_algorithm
from automl.candidates.check import candidate_space, check_candidate_processing, check_problem_types
from automl.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    name: str
    algorithm: str
    processing: Dict[str, Any]
    space: Dict[str, Any]
    description: str = ""
    reasons: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"algorithm": self.algorithm, "description": self.description,
                "processing": self.processing, "space": self.space}


def explain_processing(processing: Dict[str, Any], column_types: Dict[str, str], needs_scaling: bool) -> List[str]:
    counts: Dict[str, int] = {}
    for t in column_types.values():
        counts[t] = counts.get(t, 0) + 1
    why = []
    if counts.get("numeric") or counts.get("boolean"):
        why.append(
            f"{counts.get('numeric', 0) + counts.get('boolean', 0)} numeric/boolean column(s): "
            f"{processing['numeric_impute']} imputation"
            + (" with missing indicators" if processing["missing_indicator"] else "")
            + (f", {processing['scale']} scaling because the algorithm is scale-sensitive"
               if processing["scale"] != "none" else ", no scaling (trees are scale-invariant)"
               if not needs_scaling else ", no scaling")
        )
    if counts.get("categorical"):
        enc = processing["categorical"]
        why.append(
            f"{counts['categorical']} categorical column(s): "
            + ("one-hot encoding, categories rarer than "
               f"{processing['onehot_min_frequency']:.1%} grouped, at most {processing['onehot_max_categories']} per column"
               if enc == "onehot" else "ordinal encoding (trees split on codes), rare categories grouped")
        )
    if counts.get("text"):
        why.append(f"{counts['text']} text column(s): TF-IDF, {processing['text_max_features']} terms each")
    if counts.get("datetime"):
        why.append(f"{counts['datetime']} datetime column(s): expanded into year, month, day, weekday, hour")
    for dropped in ("id", "constant"):
        if counts.get(dropped):
            why.append(f"{counts[dropped]} {dropped} column(s) not used as features")
    return why


def generate_candidates(cfg: DictConfig, problem_type: str, n_rows: int, column_types: Dict[str, str]) -> tuple[List[Candidate], Dict[str, str]]:
    """Candidates that apply to this problem, and the reasons the others were skipped."""
    chosen: List[Candidate] = []
    skipped: Dict[str, str] = {}
    for name, cc in cfg.candidates.items():
        cc = OmegaConf.to_container(cc, resolve=True)
        algo = get_algorithm(cc["algorithm"])
        if not cc.get("enabled", True):
            skipped[name] = "disabled in its config (enabled: false)"
            continue
        missing = algo.missing_packages()
        if missing:
            hint = f"pip install 'automl[{algo.extra}]'" if algo.extra else f"pip install {' '.join(missing)}"
            skipped[name] = f"needs the optional package(s) {', '.join(missing)}, not installed ({hint})"
            continue
        only = cc.get("problem_types")
        check_problem_types(name, only)
        if only and problem_type not in only:
            skipped[name] = f"only for {', '.join(only)} problems (problem_types); this one is {problem_type}"
            continue
        limit = cc.get("max_rows") or algo.max_rows
        if limit is not None and n_rows > limit:
            skipped[name] = f"{n_rows} training rows exceed its max_rows={limit} (too slow for the budget)"
            continue
        space = candidate_space(name, cc, cfg.search_spaces_dir)
        processing = dict(cc["processing"])
        check_candidate_processing(name, processing, space)
        cand = Candidate(name, cc["algorithm"], processing, space, cc.get("description", "") or algo.description)
        cand.reasons = explain_processing(processing, column_types, algo.needs_scaling)
        chosen.append(cand)
    for name, why in skipped.items():
        log.info("candidate %s skipped: %s", name, why)
    if not chosen:
        raise ConfigError(
            "no candidate applies to this data"
            + (f" ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})" if skipped else "")
            + "; enable a candidate under `candidates`"
        )
    # Cheap, strong candidates first (their warm-start points run first).
    chosen.sort(key=lambda c: get_algorithm(c.algorithm).cost)
    return chosen, skipped
