"""Every case of the coordinator's corpus re-runs to the same events, bit for bit.

The corpus (``corpus/corpus.json.gz``, written by ``corpus/make_corpus.py``)
pins the event logs of small runs: every solver, every control alone and the
combinations whose controls interact. Floats are compared exactly (JSON floats
round-trip), η arrays by their bytes. A failure names the case and its first
differing event.

Cases regenerated on purpose, and why:
- ``homotopy-backoff``: a rejected step whose objective had just changed (the
  ramp moved) and that backed the homotopy off reported the projected-gradient
  norm of the state under the previous objective; it now reports it under the
  current one, as every other rejected step after an objective change does
  (only ``pg_norm`` at steps 5 and 14 changed).
- ``expansion+weighting``, ``expansion+homotopy``, ``expansion+stability``:
  an expansion's ΔF subtracted the scaled objective's energy (weighting,
  ramp, coupling cap) from the extended System's unscaled one; both terms are
  now the System's own energy, so ΔF (and which candidates are admitted)
  changed.
- ``solver-projected_gradient-stalls``: accepted steps that leave the
  objective exactly unchanged now carry ``diagnostics["unchanged_steps"]``
  (a run stalls after ten in a row); this run still stalls where it did.
- ``expansion+diagnostics`` was added once diagnostics could follow a
  growing System (it raised a ValueError before).
- Every case with a term-weight scheme (``weighting-*``, ``*+weighting``,
  ``homotopy+small_gain``, ``lbfgsb+weighting``): weight "adapters" were
  renamed "weightings" (the word ``adapters`` names a layer), so the cases
  and the field of ``WeightsAdapted`` changed name; checked before
  re-recording that the old lines with ``"adapter":`` read as
  ``"weighting":`` equal the new ones exactly, and nothing else changed.
- ``expansion-proposer`` (the one case on ``ExpansionConfig``'s default local
  budget): a candidate's local relaxation now stops at ``local_tol`` (cap
  ``local_steps = 2000``) instead of spending 50 steps, so the helpers admitted
  from step 5 on sit closer to their minimum; checked before re-recording that
  the same events appear in the same order and only floats moved (ΔF by ≤ 1.2e-7,
  η by ≤ 8.5e-8, energies by ≤ 6.5e-8), plus the final digest.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).with_name("corpus") / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_corpus)

CORPUS = make_corpus.load()


def test_the_corpus_covers_every_case():
    assert sorted(CORPUS) == sorted(make_corpus.cases())


def _short(line: str | None, width: int = 400) -> str:
    if line is None:
        return "<no event>"
    return line if len(line) <= width else line[:width] + "…"


@pytest.mark.parametrize("name", sorted(make_corpus.cases()))
def test_a_case_reproduces_its_events_bit_for_bit(name):
    expected, got = CORPUS[name], make_corpus.record(name)
    for k in range(max(len(expected), len(got))):
        want = expected[k] if k < len(expected) else None
        have = got[k] if k < len(got) else None
        if want != have:
            pytest.fail(f"case {name!r}: event {k} differs (of {len(expected)} recorded, {len(got)} now)\n"
                        f"  corpus: {_short(want)}\n  now:    {_short(have)}", pytrace=False)
