"""The run's report.html (see build.py)."""
from __future__ import annotations

from automl.report.build import REPORT_FILE, build_report, write_report

__all__ = ["REPORT_FILE", "build_report", "write_report"]
