"""Adapters: the DuckDB event store and its SQL views, and the command-line interface."""

from ._duckdb_store import DuckDBStore, StoreBusyError, view_sql

__all__ = ["DuckDBStore", "StoreBusyError", "view_sql"]
