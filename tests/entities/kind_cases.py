"""Random valid parameters for every registered kind (used by the finite-difference suite).

Adding a kind means adding a case here; ``test_every_kind_has_a_case`` fails otherwise.
"""

from __future__ import annotations

from hypothesis import strategies as st

finite = st.floats(-2.0, 2.0, allow_nan=False)
positive = st.floats(0.05, 2.0, allow_nan=False)
nonneg = st.floats(0.0, 2.0, allow_nan=False)

MODULE_CASES = {
    "landau": st.fixed_dictionaries({"a": finite, "b": positive, "h": finite}),
    "gate": st.fixed_dictionaries({"a": nonneg, "b": nonneg, "gain": finite, "cost": finite}),
}

COUPLING_CASES = {
    "quadratic": st.fixed_dictionaries({}),
    "directed_hinge": st.fixed_dictionaries({}),
    "gate_benefit": st.fixed_dictionaries({"delta": finite}),
}
