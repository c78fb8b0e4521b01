"""Turn the ``candidates`` config into concrete candidates for this data, saying why."""
from __future__ import annotations

import difflib
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from automl.candidates.algorithms import get_algorithm
from automl.candidates.candidate import Candidate  # noqa: F401 (callers import it from here)
from automl.candidates.check import candidate_space, check_candidate_processing, check_problem_types
from automl.errors import ConfigError

log = logging.getLogger(__name__)


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
        why.append(f"{counts['datetime']} datetime column(s): expanded into year, month, day, weekday, hour, day of year and a day count (the trend)")
    for dropped in ("id", "constant"):
        if counts.get(dropped):
            why.append(f"{counts[dropped]} {dropped} column(s) not used as features")
    return why


# ``candidates.include=[...]`` / ``candidates.exclude=[...]`` from the shell are stored as these
# top-level keys (``candidates`` itself is a dict of candidates: it cannot hold a list).
FILTER_KEYS = {"include": "candidates_include", "exclude": "candidates_exclude"}


def _algorithm_of(spec: Any) -> str:
    return str(spec.get("algorithm") if isinstance(spec, Mapping) else getattr(spec, "algorithm", ""))


def _matches(entry: str, name: str, algorithm: str) -> bool:
    """A filter entry names a candidate (``dpp0-xgboost``) or its algorithm (``xgboost``)."""
    return entry in (name, algorithm)


def check_filter(candidates: Mapping[str, Any], include: Optional[Sequence[str]],
                 exclude: Optional[Sequence[str]]) -> None:
    """Every ``candidates.include``/``candidates.exclude`` entry must name a candidate or the
    algorithm of one; else a one-line error naming the closest and the valid names."""
    algorithms = {name: _algorithm_of(spec) for name, spec in candidates.items()}
    valid = sorted(set(algorithms) | set(algorithms.values()))
    for key, entries in (("include", include), ("exclude", exclude)):
        for entry in entries or []:
            if any(_matches(str(entry), n, a) for n, a in algorithms.items()):
                continue
            near = difflib.get_close_matches(str(entry), valid, n=1, cutoff=0.5)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"candidates.{key}: '{entry}' is neither a candidate nor the algorithm of one{hint}; "
                              f"valid names: {', '.join(valid)}")


def filter_reasons(candidates: Mapping[str, Any], include: Optional[Sequence[str]],
                   exclude: Optional[Sequence[str]]) -> Dict[str, str]:
    """``{name: why}`` for the candidates that ``candidates.include``/``exclude`` leave out.
    ``include`` keeps only the candidates it names (by name or algorithm), ``exclude`` then drops
    those it names."""
    check_filter(candidates, include, exclude)
    out: Dict[str, str] = {}
    for name, spec in candidates.items():
        algorithm = _algorithm_of(spec)
        if include and not any(_matches(str(e), name, algorithm) for e in include):
            out[name] = f"not named by candidates.include={list(include)}"
        elif exclude and any(_matches(str(e), name, algorithm) for e in exclude):
            out[name] = f"named by candidates.exclude={list(exclude)}"
    return out


def generate_candidates(cfg: DictConfig, problem_type: str, n_rows: int, column_types: Dict[str, str]) -> tuple[List[Candidate], Dict[str, str]]:
    """Candidates that apply to this problem, and the reasons the others were skipped.

    ``candidates.include`` names the candidates to run (a disabled one it names is switched on);
    ``candidates.exclude`` names candidates to leave out; both by candidate or algorithm name."""
    chosen: List[Candidate] = []
    include, exclude = cfg.get(FILTER_KEYS["include"]), cfg.get(FILTER_KEYS["exclude"])
    skipped: Dict[str, str] = filter_reasons(cfg.candidates, include, exclude)
    for name, cc in cfg.candidates.items():
        if name in skipped:
            continue
        cc = OmegaConf.to_container(cc, resolve=True)
        algo = get_algorithm(cc["algorithm"])
        if include and not cc.get("enabled", True):
            log.info("candidate %s is disabled in its config but named by candidates.include: it runs", name)
            cc["enabled"] = True
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
    for name, why in skipped.items():  # switched off in the config: said at debug level only
        (log.debug if why.startswith("disabled in its config") else log.info)("candidate %s skipped: %s", name, why)
    if not chosen:
        raise ConfigError(
            "no candidate applies to this data"
            + (f" ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})" if skipped else "")
            + "; enable a candidate under `candidates`"
        )
    # Cheap, strong candidates first (their warm-start points run first).
    chosen.sort(key=lambda c: get_algorithm(c.algorithm).cost)
    return chosen, skipped
