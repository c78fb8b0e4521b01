"""Moved to automl/rundir/run.py (issue 15); this alias goes once no caller imports automl.run."""
import sys

from automl.rundir import run as _moved

sys.modules[__name__] = _moved
