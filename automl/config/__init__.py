"""automl's config: the schemas of the four commands and one compose-and-validate path.

- ``fit.py``: the `automl fit` schema (dataclasses in Hydra's ConfigStore; YAML under ``conf/``).
- ``commands.py``: the schemas of `automl predict`, `automl serve` and `automl monitor`.
- ``keys.py``: the ``key=value`` parser and its error messages (unknown key, wrong type).
- ``validate.py``: the checks a type cannot express, candidates and search spaces included.
- ``compose.py``: defaults -> YAML -> arguments -> validation, before any data is read.
"""
from automl.config.commands import (MonitorConfig, PredictConfig, ServeConfig, command_keys,  # noqa: F401
                                    compose_command)
from automl.config.compose import compose_config, compose_for, expand_sweep, to_yaml  # noqa: F401
from automl.config.fit import (BudgetConfig, CandidateConfig, Config, DataConfig, ProcessingConfig,  # noqa: F401
                               RayConfig, SearchConfig, SelectConfig, ValidationConfig)
from automl.config.validate import MODES, PROBLEM_TYPES, validate_config  # noqa: F401
from automl.resources import project_dir  # noqa: F401 (re-exported: it lived here)
