"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    from complexity_from_constraints.events import hooks

    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), {})
    finally:
        for sig in hooks.SIGNALS.values():
            for receiver in list(sig.receivers.values()):
                sig.disconnect(receiver)
    out = capsys.readouterr().out
    assert "gates opened: [('gate'," in out
    assert (tmp_path / "quickstart.duckdb").exists()


def test_readme_toml_examples_are_valid(tmp_path, capsys):
    """Each TOML block is a run file (a System and a config) or a sweep spec, and validates as one."""
    import tomllib

    from complexity_from_constraints.adapters._sweep import SweepSpec
    from complexity_from_constraints.entities import RelaxConfig, System

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    kinds = []
    for block in blocks:
        data = tomllib.loads(block)
        if "axes" in data:
            kinds.append("sweep")
            assert len(SweepSpec.model_validate(data).points()) > 1
        else:
            kinds.append("run")
            System.model_validate(data["system"])
            RelaxConfig.model_validate(data["config"])
    assert sorted(kinds) == ["run", "sweep"]
