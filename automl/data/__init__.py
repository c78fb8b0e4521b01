"""Data in: one reader (whole or chunked), one folder/prefix lister and one missing-column check
for fit, batch predict and monitor, on any fsspec URL; and column-type inference."""
from automl.data.columns import missing_columns, require_columns
from automl.data.io import read_table, write_table
from automl.data.listing import list_files
from automl.data.reader import iter_table
from automl.data.types import infer_column_types

__all__ = ["read_table", "iter_table", "list_files", "missing_columns", "require_columns", "write_table",
           "infer_column_types"]
