"""``automl fit resume=true output_dir=RUN budget.time_limit_s=S`` on a finished run: the run's own
config.yaml is the base, and only the keys given on the command line (or from Python) change it.
So the continuation trains on the run's data with its candidates without repeating them; a key
given again (``budget.time_limit_s``, ``candidates.exclude=[...]``) applies to the new attempt.

A crash resume (the run did not finish) composes as any fit does: pass the keys again."""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import yaml
from omegaconf import DictConfig, OmegaConf

from automl import artifacts as art
from automl.config.fit import Config
from automl.errors import ConfigError
from automl.redact import MASK
from automl.rundir.history import is_finished_run
from automl.rundir.layout import CONFIG_FILE

log = logging.getLogger(__name__)


def _leaves(values: Dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, value in values.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def given_keys(overrides: Sequence[str], values: Optional[Dict[str, Any]]) -> List[Tuple[str, bool]]:
    """``(key, deleted)`` for every key the user gave: ``key=v``, ``+key=v``, ``~key`` and the
    leaves of the Python ``values``."""
    keys = []
    for ov in overrides:
        head = ov.split("=", 1)[0]
        keys.append((head.lstrip("~+").split("@", 1)[0], head.startswith("~")))
    keys += [(k, False) for k in _leaves(values or {})]
    return keys


def _masked(node: Any, prefix: str = "") -> Optional[str]:
    """The first key whose value is (or holds) the mask of a secret, as config.yaml stores it."""
    if isinstance(node, dict):
        for k, v in node.items():
            found = _masked(v, f"{prefix}{k}.")
            if found:
                return found
    elif isinstance(node, str) and MASK in node:
        return prefix.rstrip(".")
    return None


def continued_config(cfg: DictConfig, overrides: Sequence[str], values: Optional[Dict[str, Any]]) -> DictConfig:
    """``cfg`` itself, unless it continues a finished run (``resume=true``): then the run's
    config.yaml with the keys given in ``overrides``/``values`` taken from ``cfg``."""
    if not cfg.get("resume") or not cfg.get("output_dir"):
        return cfg
    out, so = str(cfg.output_dir), dict(cfg.data.storage_options)
    url = art.join(out, CONFIG_FILE)
    if not is_finished_run(out, so) or not art.exists(url, so):
        return cfg
    saved = yaml.safe_load(art.read_text(url, so)) or {}
    try:
        base = OmegaConf.merge(OmegaConf.structured(Config), saved)
    except Exception as exc:  # a run of another release: keys this one does not know
        log.warning("not reading %s's settings (%s): the command line's config is used as it is", url,
                    str(exc).splitlines()[0])
        return cfg
    given = given_keys(overrides, values)
    for key, deleted in given:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        if deleted:
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
        else:
            OmegaConf.update(base, key, OmegaConf.select(cfg, key), merge=False, force_add=True)
    masked = _masked(OmegaConf.to_container(base, resolve=True))
    if masked:
        raise ConfigError(f"resume=true continues the run in {out} with its config.yaml, where {masked} is masked "
                          f"(secrets are not saved); pass {masked}=... again")
    OmegaConf.set_struct(base, True)
    log.info("continuing the finished run in %s with its config.yaml and the key(s) given: %s", out,
             ", ".join(k for k, _ in given) or "none")
    return base
