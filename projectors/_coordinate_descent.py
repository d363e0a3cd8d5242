r"""Coordinate descent: Gauss–Southwell updates of single η, and the adaptive switch to it.

An update of η_i touches only module i's own term and the edges incident to
i: :class:`Incidence` lists them once per compiled structure, and
:func:`coordinate_sweep` runs one step's updates, keeping η and the exact
gradient up to date incrementally, in O(deg i) per update. Updates are taken
in rounds: each round takes the largest projected-gradient magnitudes and
updates at once those that have no larger-scored neighbour among them. Such
coordinates share no term, so updating them together is exactly updating
them one after another, largest first. The first is the exact
Gauss–Southwell choice; a later one may not be (a neighbour of an earlier one
can have overtaken it), so each round makes at least Gauss–Southwell's
progress while the kinds' vectorised formulas run once per round, not once
per coordinate. The loop step evaluates the full objective once at the end,
so what is accepted and recorded is exact.

>>> from complexity_from_constraints.entities import RelaxConfig, standard_system
>>> from complexity_from_constraints.projectors import relax
>>> system = standard_system(30, seed=0)
>>> cd = relax(system, RelaxConfig(solver="coordinate", steps=100))
>>> ref = relax(system, RelaxConfig(solver="lbfgsb", steps=100))
>>> abs(cd.energy - ref.energy) < 1e-9
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from complexity_from_constraints.entities import CoordinateConfig, RelaxConfig

from ._compile import CompiledSystem
from ._objective import ENTROPY_CLIP, Objective
from ._solvers import AbstractSolver, ProjectedGradient, Proposal, State, StepContext, _failure, register_solver

ROUNDS_PER_SWEEP = 32  # a round considers the ⌈N/32⌉ largest scores (N ≤ 32: one exact argmax per round)
_UNRANKED = np.iinfo(np.int64).max


def _ranges(indptr: np.ndarray, values: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows ``nodes`` concatenated, and for each entry the position of its row in ``nodes``."""
    starts, ends = indptr[nodes], indptr[nodes + 1]
    counts = ends - starts
    owner = np.repeat(np.arange(nodes.size), counts)
    offsets = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return values[np.repeat(starts, counts) + offsets], owner


def _csr(n: int, rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, values[order]


@dataclass(frozen=True)
class Incidence:
    """Where each node's terms are: its module (group, position), its edges per coupling group, its neighbours.

    ``edges[k][edge_ptr[k][n]:edge_ptr[k][n + 1]]`` are the positions in
    coupling group k of the edges touching node n;
    ``neighbours[neighbour_ptr[n]:neighbour_ptr[n + 1]]`` are the nodes those
    edges join it to (over every group). Couplings join two different
    modules (the System checks it), so each edge is listed under each end once.

    >>> from complexity_from_constraints.entities import standard_system
    >>> from complexity_from_constraints.projectors import compile_system
    >>> cs = compile_system(standard_system(10, seed=1))
    >>> inc = Incidence.of(cs)
    >>> touching = [(k, int(p)) for k in range(len(inc.edges)) for p in inc.incident(k, np.array([0]))[0]]
    >>> all(0 in (int(cs.couplings[k].i[p]), int(cs.couplings[k].j[p])) for k, p in touching)
    True
    >>> len(touching) == int(inc.neighbour_ptr[1] - inc.neighbour_ptr[0])
    True
    """

    module_group: np.ndarray
    module_pos: np.ndarray
    edge_ptr: tuple[np.ndarray, ...]
    edges: tuple[np.ndarray, ...]
    neighbour_ptr: np.ndarray
    neighbours: np.ndarray

    @classmethod
    def of(cls, cs: CompiledSystem) -> Incidence:
        n = cs.n
        module_group = np.full(n, -1, np.int64)
        module_pos = np.full(n, -1, np.int64)
        for k, g in enumerate(cs.modules):
            index = np.asarray(g.index)
            module_group[index] = k
            module_pos[index] = np.arange(index.size)
        edge_ptr, edges, ends, others = [], [], [], []
        for c in cs.couplings:
            i, j = np.asarray(c.i), np.asarray(c.j)
            positions = np.arange(i.size)
            ptr, pos = _csr(n, np.concatenate([i, j]), np.concatenate([positions, positions]))
            edge_ptr.append(ptr)
            edges.append(pos)
            ends += [i, j]
            others += [j, i]
        if ends:
            neighbour_ptr, neighbours = _csr(n, np.concatenate(ends), np.concatenate(others))
        else:
            neighbour_ptr, neighbours = np.zeros(n + 1, np.int64), np.zeros(0, np.int64)
        return cls(module_group, module_pos, tuple(edge_ptr), tuple(edges), neighbour_ptr, neighbours)

    def incident(self, k: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in coupling group ``k`` of the edges touching ``nodes``, and the index in ``nodes`` of each."""
        return _ranges(self.edge_ptr[k], self.edges[k], nodes)

    def independent(self, ranked: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """The nodes of ``ranked`` (best first) with no better-ranked neighbour in it.

        ``rank`` is scratch space of N entries, all ``_UNRANKED`` on entry and on return.
        """
        rank[ranked] = np.arange(ranked.size)
        nbrs, owner = _ranges(self.neighbour_ptr, self.neighbours, ranked)
        beaten = rank[nbrs] < owner
        rank[ranked] = _UNRANKED
        return ranked[np.bincount(owner[beaten], minlength=ranked.size) == 0]


@dataclass(frozen=True)
class _Edges:
    group: int
    pos: np.ndarray
    owner: np.ndarray  # which batch node each edge touches
    ci: np.ndarray
    cj: np.ndarray
    at_i: np.ndarray  # whether the batch node is the edge's i end
    weight: np.ndarray


@dataclass(frozen=True)
class _Batch:
    """The terms touching an independent set of nodes: no term touches two of them."""

    nodes: np.ndarray
    modules: tuple[tuple[int, np.ndarray, np.ndarray], ...]  # (group, rows in the batch, positions in the group)
    edges: tuple[_Edges, ...]

    @classmethod
    def around(cls, cs: CompiledSystem, inc: Incidence, nodes: np.ndarray) -> _Batch:
        groups = inc.module_group[nodes]
        modules = []
        for k in np.unique(groups).tolist():
            rows = np.flatnonzero(groups == k)
            modules.append((k, rows, inc.module_pos[nodes[rows]]))
        edges = []
        for k, c in enumerate(cs.couplings):
            pos, owner = inc.incident(k, nodes)
            if pos.size:
                ci = c.i[pos]
                edges.append(_Edges(k, pos, owner, ci, c.j[pos], ci == nodes[owner], c.weight[pos]))
        return cls(nodes, tuple(modules), tuple(edges))


class _Coordinates:
    """η and its gradient, updated a batch at a time with the kinds' own formulas."""

    def __init__(self, objective: Objective, incidence: Incidence, eta, grad, config: CoordinateConfig,
                 step_cap: float, scale: float):
        self.cs, self.inc, self.temperature = objective.cs, incidence, objective.temperature
        self.eta = np.array(eta)  # a private copy in the backend's dtype
        self.grad = np.array(grad, dtype=np.float64)
        self.config, self.step_cap, self.scale = config, step_cap, scale

    def curvature(self, batch: _Batch) -> np.ndarray:
        """:math:`D_{ii}` of every batch node: module, incident edges and entropy."""
        cs, eta, b = self.cs, self.eta, batch.nodes.size
        out = np.zeros(b)
        for k, rows, mp in batch.modules:
            g = cs.modules[k]
            params = {n: v[mp] for n, v in g.params.items()}
            out[rows] = g.weight[mp] * g.cls.hessian_diagonal(np, eta[batch.nodes[rows]], params)
        for e in batch.edges:
            c = cs.couplings[e.group]
            hi, hj = c.cls.hessian_diagonal(np, eta[e.ci], eta[e.cj], {n: v[e.pos] for n, v in c.params.items()})
            out += np.bincount(e.owner, weights=e.weight * np.where(e.at_i, hi, hj), minlength=b)
        if self.temperature is not None:
            p = np.clip(eta[batch.nodes], ENTROPY_CLIP, 1 - ENTROPY_CLIP)
            out += self.temperature / (p * (1 - p))
        return out

    def trial(self, batch: _Batch, xs: np.ndarray):
        """Local energy changes and derivatives with η_node = ``xs[row, k]`` (column 0: the current η).

        Returns ``(ΔE, ∂, parts)``: the change of the local energy from column 0
        (b × K), the derivative of the module and entropy terms (b × K), and per
        edge group the weighted ``(∂_i φ, ∂_j φ)`` (edges × K).
        """
        cs, eta = self.cs, self.eta
        b, kk = xs.shape
        change, deriv = np.zeros((b, kk)), np.zeros((b, kk))
        for k, rows, mp in batch.modules:
            g = cs.modules[k]
            take = np.repeat(mp, kk)
            f, df = g.cls.energy_grad(np, xs[rows].ravel(), {n: v[take] for n, v in g.params.items()})
            w = g.weight[mp][:, None]
            f = f.reshape(-1, kk)
            change[rows] = w * (f - f[:, :1])
            deriv[rows] = w * df.reshape(-1, kk)
        if self.temperature is not None:
            t, p = self.temperature, np.clip(xs, ENTROPY_CLIP, 1 - ENTROPY_CLIP)
            negative_entropy = p * np.log(p) + (1 - p) * np.log(1 - p)
            change += t * (negative_entropy - negative_entropy[:, :1])
            deriv += t * np.log(p / (1 - p))
        parts = []
        columns = np.arange(kk)
        for e in batch.edges:
            c = cs.couplings[e.group]
            moving, at_i = xs[e.owner], e.at_i[:, None]
            xi = np.where(at_i, moving, eta[e.ci][:, None]).ravel()
            xj = np.where(at_i, eta[e.cj][:, None], moving).ravel()
            take = np.repeat(e.pos, kk)
            phi, di, dj = c.cls.energy_grad(np, xi, xj, {n: v[take] for n, v in c.params.items()})
            w = e.weight[:, None]
            phi = phi.reshape(-1, kk)
            slots = (e.owner[:, None] * kk + columns).ravel()
            change += np.bincount(slots, weights=(w * (phi - phi[:, :1])).ravel(), minlength=b * kk).reshape(b, kk)
            parts.append((w * di.reshape(-1, kk), w * dj.reshape(-1, kk)))
        return change, deriv, parts

    def apply(self, batch: _Batch, xs: np.ndarray, rows: np.ndarray, deriv, parts) -> np.ndarray:
        """Move every batch node to ``xs[·, rows]`` (row 0: stay); update the gradient; return the touched nodes."""
        b = np.arange(batch.nodes.size)
        self.grad[batch.nodes] += deriv[b, rows] - deriv[:, 0]
        touched = [batch.nodes[rows > 0]]
        for e, (di, dj) in zip(batch.edges, parts):
            r = rows[e.owner]
            moved = r > 0
            if not moved.any():
                continue
            e_rows = np.flatnonzero(moved)
            r = r[e_rows]
            np.add.at(self.grad, e.ci[e_rows], di[e_rows, r] - di[e_rows, 0])
            np.add.at(self.grad, e.cj[e_rows], dj[e_rows, r] - dj[e_rows, 0])
            touched += [e.ci[e_rows], e.cj[e_rows]]
        self.eta[batch.nodes] = xs[b, rows]
        return np.concatenate(touched)

    def update(self, nodes: np.ndarray) -> tuple[int, float, np.ndarray, int]:
        """One Newton-then-halving update of each of ``nodes`` (an independent set).

        Returns ``(how many moved, the largest |Δη|, the nodes whose gradient changed, halvings)``.
        """
        cfg, eta = self.config, self.eta
        batch = _Batch.around(self.cs, self.inc, nodes)
        old = eta[nodes].astype(np.float64)
        g = self.grad[nodes]
        move = -g / np.maximum(self.curvature(batch), cfg.curvature_floor) * self.scale
        if math.isfinite(self.step_cap):
            limit = self.step_cap * np.abs(g)
            move = np.clip(move, -limit, limit)
        move = np.clip(old + move, 0.0, 1.0) - old
        xs = np.stack([eta[nodes], (old + move).astype(eta.dtype)], axis=1)
        change, deriv, parts = self.trial(batch, xs)
        ok = (change[:, 1] < 0) & (xs[:, 1] != xs[:, 0])
        touched = [self.apply(batch, xs, ok.astype(np.int64), deriv, parts)] if ok.any() else []
        halvings = 0
        retry = np.flatnonzero(~ok & (xs[:, 1] != xs[:, 0]))
        if retry.size and cfg.max_backtracks:
            sub = _Batch.around(self.cs, self.inc, nodes[retry])
            factors = 0.5 ** np.arange(1, cfg.max_backtracks + 1)
            halves = (old[retry, None] + move[retry, None] * factors).astype(eta.dtype)
            xs = np.concatenate([xs[retry, :1], halves], axis=1)
            change, deriv, parts = self.trial(sub, xs)
            better = (change[:, 1:] < 0) & (xs[:, 1:] != xs[:, :1])
            found = better.any(axis=1)
            first = np.argmax(better, axis=1) + 1
            halvings = int(np.where(found, first, cfg.max_backtracks).sum())
            if found.any():
                touched.append(self.apply(sub, xs, np.where(found, first, 0), deriv, parts))
        delta = np.abs(eta[nodes].astype(np.float64) - old)
        moved = int(np.count_nonzero(delta))
        return moved, float(delta.max()), (np.concatenate(touched) if touched else nodes[:0]), halvings


@dataclass(frozen=True)
class Sweep:
    """What one step of coordinate updates produced: η and its gradient (kept exact incrementally)."""

    eta: np.ndarray
    grad: np.ndarray
    changed: int  # coordinate updates that moved η
    attempts: int  # coordinate updates tried
    largest_move: float  # max |Δη_i| of one update
    backtracks: int  # step halvings, summed over the updates


def projected_magnitude(eta, grad):
    r""":math:`|η_i - \mathrm{clip}(η_i - g_i, 0, 1)|`, the Gauss–Southwell score."""
    return np.abs(eta - np.clip(eta - grad, 0.0, 1.0))


def coordinate_sweep(objective: Objective, incidence: Incidence, eta, grad, config: CoordinateConfig, *,
                     mask=None, step_cap: float = math.inf, scale: float = 1.0) -> Sweep:
    r"""Run ``config.updates`` Gauss–Southwell updates (N if unset) from ``eta``, whose exact gradient is ``grad``.

    Coordinate i scores :math:`|η_i - \mathrm{clip}(η_i - g_i)|` (0 outside
    ``mask`` and while i is known to be stuck). Each update takes the 1-D
    Newton step :math:`-\text{scale}·g_i/\max(D_{ii}, \text{floor})` (capped
    at ``step_cap``·|g_i|, clipped to [0, 1]) and halves it up to
    ``max_backtracks`` times until the terms touching i strictly decrease; a
    coordinate that cannot decrease stays put, stuck until a neighbour moves.
    Rounds take the ⌈N/32⌉ best scores and update the ones with no better
    neighbour among them (see the module docstring). The returned ``grad``
    is the full gradient at the returned ``eta`` up to rounding.

    >>> from complexity_from_constraints.entities import standard_system
    >>> from complexity_from_constraints.projectors import compile_system
    >>> objective = Objective(compile_system(standard_system(100, seed=3)))
    >>> eta = np.full(100, 0.5)
    >>> ev = objective.evaluate(eta)
    >>> sweep = coordinate_sweep(objective, Incidence.of(objective.cs), eta, ev.grad, CoordinateConfig())
    >>> bool(np.allclose(sweep.grad, objective.evaluate(sweep.eta).grad, rtol=0, atol=1e-12))
    True
    >>> (sweep.attempts, objective.evaluate(sweep.eta).value < ev.value)
    (100, True)
    """
    state = _Coordinates(objective, incidence, eta, grad, config, step_cap, scale)
    n = objective.cs.n
    allowed = None if mask is None else np.asarray(mask) > 0
    score = projected_magnitude(state.eta, state.grad)
    if allowed is not None:
        score[~allowed] = 0.0
    rank = np.full(n, _UNRANKED)
    width = max(1, -(-n // ROUNDS_PER_SWEEP))
    limit = n if config.updates is None else config.updates
    attempts = changed = backtracks = 0
    largest = 0.0
    while attempts < limit:
        live = int(np.count_nonzero(score > 0))
        if not live:
            break
        k = min(width, live, limit - attempts)
        top = np.flatnonzero(score > 0) if k == live else np.argpartition(-score, k - 1)[:k]
        ranked = top[np.lexsort((top, -score[top]))]
        nodes = incidence.independent(ranked, rank) if k > 1 else ranked
        attempts += nodes.size
        moved, move, touched, halvings = state.update(nodes)
        backtracks += halvings
        score[nodes] = 0.0  # stuck until a neighbour moves; the moved ones are re-scored below
        if moved:
            changed += moved
            largest = max(largest, move)
            fresh = projected_magnitude(state.eta[touched], state.grad[touched])
            score[touched] = fresh if allowed is None else np.where(allowed[touched], fresh, 0.0)
    return Sweep(state.eta, state.grad, changed, attempts, largest, backtracks)


@register_solver
class CoordinateDescent(AbstractSolver):
    r"""Gauss–Southwell coordinate descent (see :class:`~entities.CoordinateConfig`).

    A proposal is one :func:`coordinate_sweep` of ``coordinate.updates``
    updates (N by default) followed by one full evaluation, accepted when
    :math:`𝓞(η') ≤` the loop's threshold. ``step_size`` is the largest
    single-coordinate move of the step; a rejected proposal halves the next
    step's Newton moves (back to full after an accepted one). When no
    coordinate can decrease, the proposal is the unchanged state with reason
    ``"no_coordinate_decrease"`` and step size 0 (the loop then stops as
    stalled unless ``min_step_size`` is 0). Diagnostics: ``updates``, the
    number of coordinates that moved.
    """

    name = "coordinate"
    numpy_only = True

    def __init__(self, config: RelaxConfig):
        super().__init__(config)
        self.scale = 1.0
        self._base: CompiledSystem | None = None
        self._incidence: Incidence | None = None

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        self.scale = 1.0
        self.incidence(objective)

    def incidence(self, objective: Objective) -> Incidence:
        """The incidence of ``objective``'s structure, rebuilt only when the compiled System changed.

        Weights and scales are read live from ``objective.cs`` at each update.
        """
        if self._incidence is None or self._base is not objective.base:
            self._base, self._incidence = objective.base, Incidence.of(objective.cs)
        return self._incidence

    def propose(self, ctx: StepContext) -> Proposal:
        cfg, s = self.config.coordinate, ctx.state
        sweep = coordinate_sweep(ctx.objective, self.incidence(ctx.objective), s.eta, s.grad, cfg,
                                 mask=ctx.mask, step_cap=ctx.step_cap, scale=self.scale)
        diagnostics = {"updates": float(sweep.changed)}
        if not sweep.changed:
            return Proposal(s.eta, s.value, s.grad, s.energy, 0.0, sweep.backtracks, False,
                            "no_coordinate_decrease", diagnostics)
        ev = ctx.objective.evaluate(sweep.eta)
        ok = ev.value <= ctx.threshold
        return Proposal.of(sweep.eta, ev, sweep.largest_move, sweep.backtracks, ok,
                           "coordinate" if ok else _failure(ev), diagnostics)

    def feedback(self, proposal: Proposal, accepted: bool, previous: State) -> None:
        self.scale = 1.0 if accepted else self.scale * 0.5

    def export_state(self) -> dict | None:
        return {"scale": self.scale}

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict) -> None:
        self.reset(objective, state, step, mask)
        self.scale = saved["scale"]


@register_solver
class Adaptive(AbstractSolver):
    r"""Projected gradient that runs one coordinate-descent step when it stalls.

    After ``coordinate.switch_patience`` consecutive accepted gradient steps
    that each lowered the objective (U, or U − T·S under ``free_energy``) by
    less than ``coordinate.switch_delta``, the next proposal is one
    :class:`CoordinateDescent` step, marked ``diagnostics["switched"] = 1``
    (the loop records a ``SolverSwitched`` event); the count then starts
    again. A rejected gradient step neither counts nor breaks the run of
    stalled steps; an objective change (reset) restarts the count.
    """

    name = "adaptive"
    numpy_only = True

    def __init__(self, config: RelaxConfig):
        super().__init__(config)
        self.gradient = ProjectedGradient(config)
        self.coordinate = CoordinateDescent(config)
        self.calm = 0
        self.switched = False

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        self.gradient.reset(objective, state, step, mask)
        self.coordinate.reset(objective, state, step, mask)
        self.calm = 0

    def propose(self, ctx: StepContext) -> Proposal:
        self.switched = self.calm >= self.config.coordinate.switch_patience
        if not self.switched:
            return self.gradient.propose(ctx)
        p = self.coordinate.propose(ctx)
        return Proposal(p.eta, p.value, p.grad, p.energy, p.step_size, p.backtracks, p.accepted, p.reason,
                        {**p.diagnostics, "switched": 1.0})

    def feedback(self, proposal: Proposal, accepted: bool, previous: State) -> None:
        if self.switched:
            self.coordinate.feedback(proposal, accepted, previous)
            self.calm = 0
            return
        self.gradient.feedback(proposal, accepted, previous)
        if accepted:
            stalled = previous.value - proposal.value < self.config.coordinate.switch_delta
            self.calm = self.calm + 1 if stalled else 0

    def export_state(self) -> dict | None:
        return {"gradient": self.gradient.export_state(), "coordinate": self.coordinate.export_state(), "calm": self.calm}

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict) -> None:
        self.reset(objective, state, step, mask)
        self.gradient.import_state(objective, state, step, mask, saved["gradient"])
        self.coordinate.import_state(objective, state, step, mask, saved["coordinate"])
        self.calm = saved["calm"]
