"""Landau plot: draw f(η) = aη² + bη⁴ and mark where relaxation settles.

The curve is evaluated on ``num`` points of [eta_min, eta_max] with the
``LandauModule`` formula; for a < 0 it is a symmetric double well with minima
at ±√(−a/2b) and depth −a²/4b. A ``LandauModule`` is relaxed from each of
``starts`` (on the box [0, 1] only the positive well exists) and the final η,
read from ``v_eta``, is marked on the curve. The PNG is drawn with
matplotlib's Agg canvas (no pyplot, no window).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, LandauModule, MissingDependencyError, RelaxConfig, System
from complexity_from_constraints.projectors import relax

from ._framework import Progress, Study, eta_table, final_eta, result, row


class LandauPlotConfig(AbstractFrozen):
    """The seed's ``examples/landau_plot`` defaults, plus relaxation starts to mark on the curve."""

    a: float = Field(-0.5, description="quadratic coefficient")
    b: float = Field(1.0, gt=0, description="quartic coefficient")
    eta_min: float = Field(-1.0, description="left end of the curve")
    eta_max: float = Field(1.0, description="right end of the curve")
    num: int = Field(400, ge=3, description="points on the curve")
    starts: tuple[float, ...] = Field((0.05, 0.3, 0.9), description="relaxation starts in (0, 1]")
    steps: int = Field(500, ge=1, description="relaxation steps")
    step_size: float = Field(0.1, gt=0, description="relaxation step size")
    out: str = Field("landau.png", description="PNG file to write")


def draw(path: Path, eta: np.ndarray, f: np.ndarray, marks: list[tuple[float, float]], title: str) -> Path:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'matplotlib>=3.8'") from None
    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(eta, f, linewidth=1.8, label="f(η) = aη² + bη⁴")
    if marks:
        ax.scatter([m[0] for m in marks], [m[1] for m in marks], color="crimson", zorder=3, label="relaxed from the starts")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.axvspan(0.0, 1.0, color="grey", alpha=0.08, label="the box [0, 1]")
    ax.set(xlabel="η", ylabel="f(η)", title=title)
    ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def run(config: LandauPlotConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    starts = [s for s in config.starts if 0.0 <= s <= 1.0]
    progress.start(len(starts) + 1, "runs")
    runs = []
    for k, eta0 in enumerate(starts):
        system = System(id=f"landau-plot-{k:02d}", modules=[LandauModule(id="m", a=config.a, b=config.b, eta0=eta0)])
        runs.append(relax(system, RelaxConfig(steps=config.steps, step_size=config.step_size), store=store).run_id)
        progress.advance()
    eta = np.linspace(config.eta_min, config.eta_max, config.num)
    params = {"a": np.full(eta.size, config.a), "b": np.full(eta.size, config.b), "h": np.zeros(eta.size)}
    f = LandauModule.energy_grad(np, eta, params)[0]
    finals = eta_table(final_eta(store, runs))
    relaxed = [finals[r]["m"] for r in runs]
    marks = [(x, config.a * x * x + config.b * x ** 4) for x in relaxed]
    star = math.sqrt(-config.a / (2 * config.b)) if config.a < 0 else 0.0
    depth = -config.a ** 2 / (4 * config.b) if config.a < 0 else 0.0
    path = draw(Path(config.out), eta, f, marks, f"Landau energy, a = {config.a:g}, b = {config.b:g}")
    progress.advance()

    spacing = (config.eta_max - config.eta_min) / (config.num - 1)
    k = int(np.argmin(f))
    grid_min = float(eta[k])
    in_range = config.eta_min <= -star and star <= config.eta_max
    grid_ok = abs(abs(grid_min) - star) <= spacing and (not in_range or f[k] - depth <= 1e-3 * max(1.0, abs(depth)))
    relax_ok = all(abs(x - star) <= 1e-6 for x in relaxed if x > 0) and all(x > 0 for x in relaxed) or config.a >= 0
    symmetric = bool(np.allclose(f, LandauModule.energy_grad(np, -eta, params)[0]))
    held = grid_ok and relax_ok and symmetric
    return result(
        "landau_plot", config,
        hypothesis=f"for a < 0 the curve is a symmetric double well with minima at ±√(−a/2b) = ±{star:.4g} and depth "
                   f"−a²/4b = {depth:.4g}, and relaxation from every start in (0, 1] settles in the positive well",
        measured=f"grid minimum at η = {grid_min:+.4f} (spacing {spacing:.2g}), f = {float(f[k]):.5f}; symmetric "
                 f"{symmetric}; relaxed η " + ", ".join(f"{x:.6f}" for x in relaxed) + f"; wrote {path}",
        held=held,
        seed_result="the seed's example drew the curve only (double well for a < 0, no numbers)",
        notes="Drawn with matplotlib's Agg canvas (no pyplot); the relaxation marks are new. η = 0 is a "
              "stationary point of the double well, so a start at 0 would stay there.",
        metrics={"eta_star": star, "depth": depth, "grid_min_eta": grid_min, "grid_min_f": float(f[k]),
                 "png": str(path)},
        rows=[row(start=s, eta_final=x, error=abs(x - star)) for s, x in zip(starts, relaxed)], run_ids=runs)


STUDY = Study("landau_plot", "the Landau double well, drawn, with relaxation marks", LandauPlotConfig, run)
