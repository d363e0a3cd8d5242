"""Every docstring example in the installed package runs as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import complexity_from_constraints as cfc

LAYERS = ("entities", "events", "projectors", "adapters", "experiments")


def _modules() -> list[str]:
    names = [cfc.__name__]
    for layer in LAYERS:
        package = importlib.import_module(f"{cfc.__name__}.{layer}")
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")]
    return names


MODULES = _modules()


def test_every_layer_contributes_modules():
    for layer in LAYERS:
        assert sum(name.startswith(f"{cfc.__name__}.{layer}.") for name in MODULES) >= 2, layer


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write a file write it here
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module, module.__name__):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
