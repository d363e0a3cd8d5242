"""Solvers being written (registered on import)."""
