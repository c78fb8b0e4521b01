"""Data in: reading tables from any fsspec URL and inferring column types."""
from automl.data.io import read_table, write_table
from automl.data.types import infer_column_types

__all__ = ["read_table", "write_table", "infer_column_types"]
