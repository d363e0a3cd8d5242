"""APC vs Legendre: does an orthonormal basis fitted to data make relaxation better conditioned?

Three splits of ξ = 2η − 1: ``train`` and a held-out ``test`` from clip(N(0, 0.5), −1, 1)
and the seed's out-of-distribution ``ood`` split, clip(±0.8 + N(0, 0.2)). The
APC basis is fitted on ``train`` only (``entities.apc_basis``); its Gram matrix
(1/N)ΦᵀΦ on each split shows how orthonormal it stays away from the data it
was fitted on.

Relaxation (projected gradient, Armijo from α = 0.2, up to 10 backtracks,
normalised directions: the seed's settings) of one ``PolynomialModule`` from
the seed's η₀ = 0.9 and from ``starts`` starting points drawn from each split,
for three energies:

- ``legendre``: Σ c_k P_k(ξ) with the seed's coefficients c;
- ``apc_same_coeffs``: Σ c_k φ_k(ξ), the seed's comparison: the same numbers
  in another basis, which is another function;
- ``apc_same_function``: the Legendre energy written in the APC basis
  (coefficients B⁻ᵀ m, m its monomial coefficients): the same function.

Backtracks and final energies come from ``v_step_stats`` and ``v_runs``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, DirectionConfig, PolynomialModule, RelaxConfig, System, apc_basis, legendre_monomials
from complexity_from_constraints.projectors import diff_runs, relax

from ._framework import Progress, Study, by_run, fmt, mean, query_runs, result, row, run_summaries


class ApcVsLegendreConfig(AbstractFrozen):
    """The seed's ``apc_vs_legendre_ood`` defaults, plus the held-out split and start points it lacked."""

    degree: int = Field(4, ge=1, le=12, description="polynomial degree")
    coeffs: tuple[float, ...] = Field((0.2, -0.15, 0.25, 0.0, 0.1), min_length=1, description="energy coefficients")
    steps: int = Field(30, ge=1, description="relaxation steps")
    step_size: float = Field(0.2, gt=0, description="initial Armijo step")
    max_backtracks: int = Field(10, ge=0, description="Armijo reductions per step")
    normalize: bool = Field(True, description="normalised gradient directions (the seed's setting)")
    eta0: float = Field(0.9, ge=0, le=1, description="the seed's single start")
    n_train: int = Field(1024, ge=2, description="samples the APC basis is fitted on")
    n_test: int = Field(1024, ge=2, description="samples in each test split")
    starts: int = Field(8, ge=0, description="start points drawn from each split")
    seed: int = Field(7, ge=0, description="seed of the splits")


def splits(config: ApcVsLegendreConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(config.seed)
    train = np.clip(rng.normal(0.0, 0.5, config.n_train), -1.0, 1.0)
    test = np.clip(rng.normal(0.0, 0.5, config.n_test), -1.0, 1.0)
    ood = np.clip(rng.choice([-0.8, 0.8], config.n_test) + rng.normal(0.0, 0.2, config.n_test), -1.0, 1.0)
    return {"train": train, "test": test, "ood": ood}


def gram_error(basis: np.ndarray, xi: np.ndarray) -> float:
    """max |(1/N) ΦᵀΦ − I| for φ_n(ξ) = Σ_p basis[n, p] ξ^p."""
    phi = np.vander(xi, basis.shape[1], increasing=True) @ basis.T
    return float(np.abs(phi.T @ phi / xi.size - np.eye(basis.shape[0])).max())


def run(config: ApcVsLegendreConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    d = config.degree
    coeffs = (tuple(config.coeffs) + (0.0,) * (d + 1))[: d + 1]
    data = splits(config)
    B = apc_basis(data["train"], d)
    monomial = np.zeros(d + 1)
    m = legendre_monomials(coeffs)
    monomial[: m.size] = m
    same_function = np.linalg.solve(B.T, monomial)
    basis = tuple(map(tuple, B.tolist()))
    energies = {
        "legendre": dict(basis="legendre", coeffs=coeffs),
        "apc_same_coeffs": dict(basis="apc", coeffs=coeffs, apc_basis=basis),
        "apc_same_function": dict(basis="apc", coeffs=tuple(same_function.tolist()), apc_basis=basis),
    }
    starts = [("seed", config.eta0)] + [(name, float((xi + 1) / 2)) for name, xs in data.items()
                                        for xi in xs[: config.starts]]
    relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, line_search="armijo",
                               max_backtracks=config.max_backtracks, direction=DirectionConfig(normalize=config.normalize))
    progress.start(len(energies) * len(starts), "runs")
    runs = []
    for energy, fields in energies.items():
        for k, (split, eta0) in enumerate(starts):
            s = System(id=f"poly-{energy}-{k:03d}", modules=[PolynomialModule(id="p", eta0=eta0, **fields)])
            runs.append((relax(s, relax_config, store=store).run_id, energy, split, k))
            progress.advance()

    run_ids = [r for r, *_ in runs]
    summary = by_run(run_summaries(store, run_ids))
    to_99 = dict(query_runs(store, """
        SELECT s.run_id, sum(s.backtracks) FILTER (WHERE s.step <= d.delta_f99) AS backtracks_to_99
        FROM v_steps AS s JOIN v_delta_f90 AS d ON d.run_id = s.run_id
        WHERE list_contains($ids, s.run_id) GROUP BY s.run_id""", run_ids).iter_rows())
    outcome = {(energy, k): summary[run_id] | {"backtracks_to_99": to_99.get(run_id)} for run_id, energy, _, k in runs}
    run_of = {(energy, k): run_id for run_id, energy, _, k in runs}
    rows = []
    for energy in energies:
        for split in ("seed", *data):
            ks = [k for k, (name, _) in enumerate(starts) if name == split]
            if not ks:
                continue
            rows.append(row(energy=energy, split=split, starts=len(ks),
                            backtracks_to_99_mean=mean([outcome[(energy, k)]["backtracks_to_99"] or 0 for k in ks]),
                            backtracks_mean=mean([outcome[(energy, k)]["total_backtracks"] for k in ks]),
                            delta_f99_mean=mean([outcome[(energy, k)]["delta_f99"] or 0 for k in ks]),
                            final_energy_mean=mean([outcome[(energy, k)]["final_energy"] for k in ks]),
                            accepted_steps_mean=mean([outcome[(energy, k)]["accepted_steps"] for k in ks]),
                            apc_gram_error=gram_error(B, data[split]) if split in data else None))
    grid = np.linspace(0.0, 1.0, 201)

    def f(fields):
        mono = np.asarray(PolynomialModule(id="p", **fields).monomial)
        return PolynomialModule.energy_grad(np, grid, {"monomial": np.broadcast_to(mono, (grid.size, mono.size))})[0]

    same_gap = float(np.abs(f(energies["legendre"]) - f(energies["apc_same_function"])).max())
    other_gap = float(np.abs(f(energies["legendre"]) - f(energies["apc_same_coeffs"])).max())
    bt = {(r["energy"], r["split"]): r["backtracks_to_99_mean"] for r in rows}
    total = {(r["energy"], r["split"]): r["backtracks_mean"] for r in rows}
    # where do the two writings of the same function part ways, and is that before 99 % of the drop?
    early = 0
    for k in range(len(starts)):
        a, b = run_of[("legendre", k)], run_of[("apc_same_function", k)]
        split_at = diff_runs(store, a, b, tol=1e-9).first_divergence
        f99 = outcome[("legendre", k)]["delta_f99"]
        early += split_at is not None and f99 is not None and split_at <= f99
    held = all(bt[("apc_same_function", s)] < bt[("legendre", s)] for s in ("seed", *data) if ("legendre", s) in bt)
    gram = {s: gram_error(B, x) for s, x in data.items()}
    return result(
        "apc_vs_legendre", config,
        hypothesis="an energy written in the APC basis fitted on the training split relaxes with fewer backtracks "
                   "than in the Legendre basis, on held-out and out-of-distribution starts too",
        measured=f"same function (max |ΔE| {same_gap:.1e} on a grid): mean backtracks to 99 % of the drop, "
                 "Legendre vs APC: "
                 + ", ".join(f"{s} {fmt(bt.get(('legendre', s)), '.3g')} vs {fmt(bt.get(('apc_same_function', s)), '.3g')}"
                             for s in ("seed", *data) if ("legendre", s) in bt)
                 + f"; the two runs part (|Δη| > 1e-9) before ΔF99 in {early}/{len(starts)} starts (after it, "
                 f"rounding at the optimum changes later backtrack counts: totals at the seed start "
                 f"{fmt(total[('legendre', 'seed')], '.3g')} vs {fmt(total[('apc_same_function', 'seed')], '.3g')}); "
                 f"same coefficients (another function, max |ΔE| {other_gap:.2f}), total backtracks at the seed "
                 f"start {fmt(total[('legendre', 'seed')], '.3g')} vs {fmt(total[('apc_same_coeffs', 'seed')], '.3g')}, "
                 f"final energy {fmt(outcome[('legendre', 0)]['final_energy'], '.5f')} vs "
                 f"{fmt(outcome[('apc_same_coeffs', 0)]['final_energy'], '.5f')}; "
                 f"APC Gram error train {gram['train']:.1e}, held-out {gram['test']:.2g}, ood {gram['ood']:.2g}",
        held=held,
        seed_result="steps=15: Legendre E 0.106349 / 42 backtracks, APC 0.356191 / 53, identical for train and test "
                    "(re-run at steps=30: identical again); the test split was never used",
        notes="The seed fitted APC on its train split and then never used the test split, so 'train' and 'test' "
              "rows were the same run; and it compared the same coefficients in two bases, i.e. two different "
              "functions. For a scalar η, changing basis only reparametrises the coefficients: the "
              "coordinator evaluates every polynomial in monomials, so the same function relaxes the same way "
              "in any basis. Orthonormality is a property of the basis under the training measure; on held-out "
              "data it holds only approximately and on out-of-distribution data not at all.",
        metrics={"same_function_gap": same_gap, "same_coeffs_gap": other_gap, "parted_before_f99": early,
                 "gram_error_train": gram["train"], "gram_error_test": gram["test"], "gram_error_ood": gram["ood"]},
        rows=rows, run_ids=[r for r, *_ in runs])


STUDY = Study("apc_vs_legendre", "does an orthonormal (APC) basis need fewer backtracks than Legendre?",
              ApcVsLegendreConfig, run)
