"""`key=value` options of `automl serve`: the shared parser and value checks of ``automl.options``.

Kept so ``from automl.serving.options import flat_options`` goes on working; new code imports
``automl.options``.
"""
from __future__ import annotations

from automl.options import as_bool, as_int, as_list, flat_options

__all__ = ["as_bool", "as_int", "as_list", "flat_options"]
