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
    "gate": st.fixed_dictionaries({"a": nonneg, "b": nonneg, "gain": finite, "cost": finite,
                                   "measurement": st.sampled_from(["hazard", "logistic", "straight_through"])}),
    "sequence": st.fixed_dictionaries({"alpha": nonneg, "beta": nonneg}),
    "connectivity": st.fixed_dictionaries({"alpha": nonneg, "beta": nonneg}),
    "nash": st.fixed_dictionaries({"a": nonneg, "b": nonneg, "row_payoffs": st.just(((3.0, 0.0), (5.0, 1.0))),
                                   "col_payoffs": st.just(((3.0, 5.0), (0.0, 1.0)))}),
    "compression": st.fixed_dictionaries({"a": nonneg, "b": nonneg, "target": st.floats(0.0, 1.0)}),
    "polynomial": st.fixed_dictionaries({"coeffs": st.lists(finite, min_size=1, max_size=13).map(tuple)}),
}

COUPLING_CASES = {
    "quadratic": st.fixed_dictionaries({}),
    "directed_hinge": st.fixed_dictionaries({}),
    "gate_benefit": st.fixed_dictionaries({"delta": finite}),
    "asymmetric_hinge": st.fixed_dictionaries({"alpha": nonneg, "beta": nonneg}),
    "damped_gate_benefit": st.fixed_dictionaries({"delta": finite, "damping": nonneg, "eta_power": st.floats(1.0, 4.0),
                                                  "positive_scale": nonneg, "negative_scale": nonneg}),
}
