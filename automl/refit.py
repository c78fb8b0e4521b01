"""Moved to automl/rundir/refit.py (issue 15); this alias goes once no caller imports automl.refit."""
import sys

from automl.rundir import refit as _moved

sys.modules[__name__] = _moved
