"""A kind from the user's own code is found through CFC_KINDS, and an unknown kind says how to define it."""

from __future__ import annotations

import sys

import pytest

from complexity_from_constraints.entities import (
    KINDS_ENV,
    CfcError,
    InvalidEntityError,
    System,
    import_kind_modules,
    module_kinds,
)

PLUGIN = '''
from typing import Literal

from complexity_from_constraints.entities import AbstractModule


class PluginWellModule(AbstractModule):
    kind: Literal["plugin_well"] = "plugin_well"

    @staticmethod
    def energy_grad(xp, eta, p):
        return (eta - 0.5) ** 2, 2 * (eta - 0.5)

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        return 2 + 0 * eta

    def initial_eta(self) -> float:
        return 0.1
'''

DATA = {"id": "s", "modules": [{"kind": "plugin_well", "id": "p"}]}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module defining one kind, importable as ``cfc_plugin_kinds`` but not imported yet."""
    (tmp_path / "cfc_plugin_kinds.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(KINDS_ENV, raising=False)
    yield "cfc_plugin_kinds"
    module_kinds.unregister("plugin_well")
    sys.modules.pop("cfc_plugin_kinds", None)


def test_an_unknown_kind_says_how_to_define_it(plugin):
    with pytest.raises(InvalidEntityError) as info:
        System.model_validate(DATA)
    assert info.value.value == "plugin_well"
    assert "unknown module kind" in str(info.value) and KINDS_ENV in str(info.value)


def test_cfc_kinds_names_the_modules_that_define_kinds(plugin, monkeypatch):
    monkeypatch.setenv(KINDS_ENV, f" {plugin} ")
    system = System.model_validate(DATA)
    assert system.modules[0].kind == "plugin_well" and type(system.modules[0]).__name__ == "PluginWellModule"


def test_a_module_named_in_cfc_kinds_that_does_not_import_is_named(plugin, monkeypatch):
    monkeypatch.setenv(KINDS_ENV, "no_such_module_for_cfc")
    with pytest.raises(CfcError, match="no_such_module_for_cfc"):
        import_kind_modules()
