"""Fixtures for driving the ``cfc`` command line in-process."""

from __future__ import annotations

import pytest

from adapters.cli import main


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` of one ``cfc`` invocation."""

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
