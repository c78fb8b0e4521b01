"""Moved to automl/rundir/manifest.py (issue 15); this alias goes once no caller imports automl.manifest."""
import sys

from automl.rundir import manifest as _moved

sys.modules[__name__] = _moved
