"""`automl predict`: batch predictions from a run folder to a CSV or Parquet file."""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional

from automl.data.io import read_table, write_table
from automl.run import load

log = logging.getLogger(__name__)


def batch_predict(run_dir: str, input: str, output: str, storage_options: Optional[Dict[str, Any]] = None) -> int:
    """Predict every row of ``input`` and write ``output``; returns the number of rows."""
    started = time.time()
    run = load(run_dir, storage_options)
    model = run.model
    df = read_table(input, storage_options, what="input")
    out = model.predict_frame(df)
    write_table(out, output, storage_options)
    log.info("wrote %d predictions to %s in %.1f s", len(out), output, time.time() - started)
    return len(out)
