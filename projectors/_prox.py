r"""Proximal solvers: forward–backward splitting with closed-form edge proxes, and ADMM.

Both solvers ask each coupling kind for its closed form
(:meth:`~entities.AbstractCoupling.prox_form`: a squared difference, a squared
hinge or a linear pull), treat those edges exactly and step explicitly on the
rest, :math:`r(η)`: every module term, every coupling kind without a closed
form (never silently dropped) and, with a temperature, :math:`-T·S`. A kind
defined outside this package gets the same treatment by declaring its form.

**Pair proxes.** With :math:`t = τw_e` and anchors :math:`(a, b)` (any reals),
the pair prox is :math:`\arg\min_{(x, y) ∈ [0,1]^2} tφ(x, y) + ½(x-a)^2 + ½(y-b)^2`,
strictly convex, so it is the unconstrained minimiser when that lies in the
box, else the best of the four sides' 1-D minimisers:

- squared difference ("quadratic" below), :math:`φ = (x-y)^2`: :math:`x + y = a + b`,
  :math:`x - y = (a - b)/(1 + 4t)`;
- squared hinge, :math:`φ = \max(0, βy - αx)^2` (directed: α = β = 1): the identity
  when :math:`g_0 = βb - αa ≤ 0`, else :math:`g^* = g_0/(1 + 2t(α^2+β^2))`,
  :math:`x = a + 2tαg^*`, :math:`y = b - 2tβg^*`;
- linear pull (a gate benefit), :math:`φ = -xΔ`: :math:`x = \mathrm{clip}(a + tΔ)`; a linear term's
  forward step is already its prox.

**Star minimiser.** A centre with its neighbours fixed minimises the convex
piecewise quadratic :math:`½Ax^2 - Bx + Σ_k w_k \max(0, a_k x + b_k)^2` over
[0, 1]; its derivative is continuous, piecewise linear and non-decreasing, so
sorting the breakpoints :math:`-b_k/a_k` and one segmented cumulative sum give
the segment holding the root, and the root exactly (:func:`minimise_star`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from complexity_from_constraints.entities import LinearPull, SquaredDifference, SquaredHinge

from ._compile import CompiledSystem
from ._objective import ENTROPY_CLIP, Objective
from ._solvers import AbstractSolver, Proposal, State, StepContext, register_solver

PAIR_FORMS = (SquaredDifference, SquaredHinge)
PROX_FORMS = (*PAIR_FORMS, LinearPull)


def _form(group):
    """The closed form the group's kind declares for its parameters, or ``None``."""
    return group.cls.prox_form(group.params)


# --- closed-form proxes -------------------------------------------------------------------------------------------


def _on_the_box(x, y, a, b, cost, x_given_y, y_given_x):
    """Replace the points outside the box by the minimiser over its four sides (the problem is strictly convex).

    ``x_given_y(y, k)`` / ``y_given_x(x, k)``: the 1-D minimiser on a side, for the rows ``k``.
    """
    out = np.flatnonzero((x < 0) | (x > 1) | (y < 0) | (y > 1))
    if out.size == 0:
        return x, y
    zero, one = np.zeros(out.size), np.ones(out.size)
    xs = np.stack([zero, one, np.clip(x_given_y(zero, out), 0, 1), np.clip(x_given_y(one, out), 0, 1)])
    ys = np.stack([np.clip(y_given_x(zero, out), 0, 1), np.clip(y_given_x(one, out), 0, 1), zero, one])
    best = np.argmin(cost(xs, ys, a[out], b[out], out), axis=0)
    col = np.arange(out.size)
    x, y = x.copy(), y.copy()
    x[out], y[out] = xs[best, col], ys[best, col]
    return x, y


def prox_quadratic(a, b, t):
    r"""The box prox of :math:`t(x - y)^2` at anchors ``a, b`` (any reals), element-wise.

    Unconstrained: the sum is kept and the difference shrinks by :math:`1 + 4t`
    (inside the box whenever the anchors are); a point outside is replaced by
    the best of the four sides, on which :math:`y = \mathrm{clip}((b + 2tx)/(1 + 2t))`
    or symmetrically.

    >>> prox_quadratic(np.array([1.0, 1.5]), np.array([0.0, 1.5]), np.array([0.25, 0.25]))
    (array([0.75, 1.  ]), array([0.25, 1.  ]))
    """
    a, b, t = np.broadcast_arrays(*map(np.asarray, (a, b, t)))
    mean = 0.5 * (a + b)
    half = 0.5 * (a - b) / (1 + 4 * t)
    return _on_the_box(
        mean + half, mean - half, a, b,
        lambda x, y, a, b, k: t[k] * (x - y) ** 2 + 0.5 * ((x - a) ** 2 + (y - b) ** 2),
        lambda y, k: (a[k] + 2 * t[k] * y) / (1 + 2 * t[k]),
        lambda x, k: (b[k] + 2 * t[k] * x) / (1 + 2 * t[k]))


def prox_hinge(a, b, t, alpha, beta):
    r"""The box prox of :math:`t\max(0, βy - αx)^2` at anchors ``a, b`` (any reals), element-wise.

    Unconstrained: the identity when :math:`g_0 = βb - αa ≤ 0`, else
    :math:`g^* = g_0/(1 + 2t(α^2+β^2))`, :math:`x = a + 2tαg^*`,
    :math:`y = b - 2tβg^*`. A point outside the box is replaced by the best of
    the four sides; on a side x = X the minimiser is y = b if :math:`βb ≤ αX`,
    else :math:`(b + 2tαβX)/(1 + 2tβ^2)` (clipped), and symmetrically.

    >>> prox_hinge(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 0.25, np.array([1.0, 0.5]), np.array([1.0, 2.0]))
    (array([0.25, 1.  ]), array([0.75, 0.5 ]))
    """
    a, b, t, alpha, beta = np.broadcast_arrays(*map(np.asarray, (a, b, t, alpha, beta)))
    g = np.maximum(beta * b - alpha * a, 0.0) / (1 + 2 * t * (alpha * alpha + beta * beta))

    def cost(x, y, a, b, k):
        gap = np.maximum(beta[k] * y - alpha[k] * x, 0.0)
        return t[k] * gap * gap + 0.5 * ((x - a) ** 2 + (y - b) ** 2)

    def x_given_y(y, k):
        ak, tk, al, be = a[k], t[k], alpha[k], beta[k]
        return np.where(be * y > al * ak, (ak + 2 * tk * al * be * y) / (1 + 2 * tk * al * al), ak)

    def y_given_x(x, k):
        bk, tk, al, be = b[k], t[k], alpha[k], beta[k]
        return np.where(be * bk > al * x, (bk + 2 * tk * al * be * x) / (1 + 2 * tk * be * be), bk)

    return _on_the_box(a + 2 * t * alpha * g, b - 2 * t * beta * g, a, b, cost, x_given_y, y_given_x)


def minimise_star(curvature, pull, centre, slope, offset, weight):
    r"""Per centre c, the exact minimiser over [0, 1] of the convex piecewise quadratic

    .. math::
        h_c(x) = ½A_c x^2 - B_c x + Σ_{k:\,\text{centre}_k = c} w_k \max(0, a_k x + b_k)^2, \qquad A_c > 0.

    :math:`h'(x) = Ax - B + Σ_k 2w_k a_k\max(0, a_k x + b_k)` is continuous,
    piecewise linear and non-decreasing. Each hinge is active on one side of its
    breakpoint :math:`p_k = -b_k/a_k`; crossing it left to right changes the
    slope and intercept of :math:`h'` by :math:`±(2w_ka_k^2, 2w_ka_kb_k)` (+ for
    :math:`a_k > 0`). The breakpoints inside (0, 1) are sorted per centre; a
    segmented cumulative sum gives :math:`h'` at each, the first breakpoint with
    :math:`h' ≥ 0` closes the segment holding the root, and on that segment
    :math:`x = -I/S` exactly (clipped to the box). O(k log k) for k hinges.

    Args:
        curvature: A, one per centre (> 0).
        pull: B, one per centre.
        centre: for each hinge, the index of its centre.
        slope, offset, weight: :math:`a_k, b_k, w_k ≥ 0` per hinge.

    >>> minimise_star(np.array([1.0]), np.array([0.8]), np.array([0]), np.array([1.0]), np.array([-0.5]), np.array([1.0]))
    array([0.6])
    """
    m = len(curvature)
    live = (slope != 0) & (weight > 0)
    c, a, b, w = centre[live], slope[live], offset[live], weight[live]
    gain_s, gain_i = 2 * w * a * a, 2 * w * a * b
    active = (b > 0) | ((b == 0) & (a > 0))  # at x = 0⁺
    s0 = curvature + np.bincount(c, gain_s * active, minlength=m)
    i0 = -pull + np.bincount(c, gain_i * active, minlength=m)
    p = -b / a
    inner = (p > 0) & (p < 1)
    sign = np.sign(a[inner])
    c, p, ds, di = c[inner], p[inner], sign * gain_s[inner], sign * gain_i[inner]
    order = np.argsort(p)
    order = order[np.argsort(c[order].astype(np.int16 if m < 2**15 else np.int64), kind="stable")]  # radix for int16
    c, p, ds, di = c[order], p[order], ds[order], di[order]
    slope_root, intercept_root = s0.copy(), i0.copy()
    if c.size:
        k = np.arange(c.size)
        first = np.ones(c.size, bool)
        first[1:] = c[1:] != c[:-1]
        start = np.maximum.accumulate(np.where(first, k, 0))
        cum_s, cum_i = np.cumsum(ds), np.cumsum(di)
        s_after = s0[c] + cum_s - (cum_s - ds)[start]
        i_after = i0[c] + cum_i - (cum_i - di)[start]
        hit = s_after * p + i_after >= 0  # h'(p_k) ≥ 0, monotone within a centre
        last = np.ones(c.size, bool)
        last[:-1] = first[1:]
        slope_root[c[last]], intercept_root[c[last]] = s_after[last], i_after[last]
        before = np.zeros_like(hit)
        before[1:] = hit[:-1]
        first_hit = hit & (first | ~before)
        slope_root[c[first_hit]] = s_after[first_hit] - ds[first_hit]
        intercept_root[c[first_hit]] = i_after[first_hit] - di[first_hit]
    return np.clip(-intercept_root / slope_root, 0.0, 1.0)


# --- what the solvers read from the compiled system --------------------------------------------------------------


def remaining_gradient(objective: Objective, eta: np.ndarray, handled: tuple[type, ...]) -> np.ndarray:
    r"""∇r(η): every module term, every coupling kind whose closed form is not one of ``handled``, and :math:`-T·S`."""
    cs = objective.cs
    grad = np.zeros(cs.n)
    for g in cs.modules:
        _, df = g.cls.energy_grad(np, g.take(eta), g.params)
        grad[g.span if g.span is not None else g.index] = g.weight * df
    for c in cs.couplings:
        if isinstance(_form(c), handled):
            continue
        _, di, dj = c.cls.energy_grad(np, eta[c.i], eta[c.j], c.params)
        grad += np.bincount(c.i, c.weight * di, minlength=cs.n) + np.bincount(c.j, c.weight * dj, minlength=cs.n)
    if objective.temperature is not None:
        p = np.clip(eta, ENTROPY_CLIP, 1 - ENTROPY_CLIP)
        grad += objective.temperature * np.log(p / (1 - p))
    return grad


@dataclass(frozen=True)
class PairEdges:
    r"""Every squared-difference and squared-hinge edge in one table (differences first, then hinges, in group order).

    A hinge's gap is :math:`g = βη_j - αη_i` (directed: α = β = 1); a
    quadratic edge has ``hinge = False`` and α = β = 1 (unused by its prox).
    """

    i: np.ndarray
    j: np.ndarray
    weight: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    hinge: np.ndarray

    @classmethod
    def of(cls, cs: CompiledSystem) -> PairEdges:
        groups = [(c, form) for c in cs.couplings if isinstance(form := _form(c), PAIR_FORMS)]
        groups.sort(key=lambda pair: isinstance(pair[1], SquaredHinge))
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("i", "j", "weight", "alpha", "beta", "hinge")}
        for c, form in groups:
            one = np.ones(len(c.ids))
            hinge = isinstance(form, SquaredHinge)
            parts["i"].append(np.asarray(c.i, np.int64))
            parts["j"].append(np.asarray(c.j, np.int64))
            parts["weight"].append(np.asarray(c.weight, np.float64) * one)
            parts["alpha"].append(np.asarray(form.alpha, np.float64) * one if hinge else one)
            parts["beta"].append(np.asarray(form.beta, np.float64) * one if hinge else one)
            parts["hinge"].append(np.full(len(c.ids), hinge))
        empty = {"i": np.int64, "j": np.int64, "hinge": bool}
        return cls(**{k: np.concatenate(v) if v else np.zeros(0, empty.get(k, np.float64)) for k, v in parts.items()})

    def structure(self, n: int) -> tuple:
        """What the colourings depend on: the endpoints and which edges are hinges."""
        return n, self.i.tobytes(), self.j.tobytes(), self.hinge.tobytes()


def gate_pull(cs: CompiledSystem) -> np.ndarray:
    r""":math:`G_i = Σ_{e: i_e = i} w_eΔ_e` over the linear-pull edges (gate benefits): the whole linear pull on each module."""
    pull = np.zeros(cs.n)
    for c in cs.couplings:
        if isinstance(form := _form(c), LinearPull):
            pull += np.bincount(c.i, np.asarray(c.weight * form.delta, np.float64) * np.ones(len(c.ids)), minlength=cs.n)
    return pull


def colour_edges(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Greedy colouring of the edges into matchings (at most 2Δ − 1 colours).

    Edge e gets the least colour not yet used at either of its ends.

    >>> colour_edges(np.array([0, 1, 2, 0]), np.array([1, 2, 0, 3]), 4)
    array([0, 1, 2, 1])
    """
    used = [0] * n  # bit c set: colour c already meets this node
    colour = np.empty(len(i), np.int64)
    for e, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
        free = ~(used[a] | used[b])
        c = (free & -free).bit_length() - 1
        colour[e] = c
        used[a] |= 1 << c
        used[b] |= 1 << c
    return colour


def colour_nodes(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Greedy (largest-first) colouring of the nodes: adjacent nodes never share a colour."""
    import networkx as nx  # only the star sweep colours nodes; networkx is slow to import

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(i.tolist(), j.tolist()))
    colours = nx.greedy_color(graph, strategy="largest_first")
    return np.array([colours[k] for k in range(n)], np.int64)


# --- the two block modes -----------------------------------------------------------------------------------------


def _class_bounds(keys: np.ndarray, classes: int, parts: int) -> np.ndarray:
    """Start offsets of each (class, part) run in sorted ``keys = class·parts + part``, plus the end."""
    return np.searchsorted(keys, np.arange(classes * parts + 1))


class _PairSweep:
    """Gauss–Seidel over matchings: a full explicit step, then each edge's explicit part traded for its prox."""

    def __init__(self, edges: PairEdges, n: int):
        colour = colour_edges(edges.i, edges.j, n)
        self.classes = int(colour.max()) + 1 if colour.size else 0
        keys = colour * 2 + edges.hinge
        self.order = np.argsort(keys, kind="stable")
        self.bounds = _class_bounds(keys[self.order], self.classes, 2)

    def bind(self, edges: PairEdges, cs: CompiledSystem) -> list[tuple]:
        o = self.order
        i, j, w, alpha, beta = edges.i[o], edges.j[o], edges.weight[o], edges.alpha[o], edges.beta[o]
        blocks = []
        for k in range(self.classes):
            q, h = slice(self.bounds[2 * k], self.bounds[2 * k + 1]), slice(self.bounds[2 * k + 1], self.bounds[2 * k + 2])
            blocks.append((i[q], j[q], w[q], i[h], j[h], w[h], alpha[h], beta[h]))
        return blocks

    @staticmethod
    def sweep(bound, objective: Objective, state: State, tau: float, frozen):
        eta = np.asarray(state.eta)
        x = eta - tau * np.asarray(state.grad)
        if frozen is not None:
            x[frozen] = eta[frozen]
        for qi, qj, qw, hi, hj, hw, alpha, beta in bound:
            if qi.size:
                t = tau * qw
                pull = 2 * t * (eta[qi] - eta[qj])
                x[qi], x[qj] = prox_quadratic(x[qi] + pull, x[qj] - pull, t)
            if hi.size:
                t = tau * hw
                gap = 2 * t * np.maximum(beta * eta[hj] - alpha * eta[hi], 0.0)
                x[hi], x[hj] = prox_hinge(x[hi] - alpha * gap, x[hj] + beta * gap, t, alpha, beta)
            if frozen is not None:
                x[frozen] = eta[frozen]
        return np.clip(x, 0.0, 1.0)


class _StarSweep:
    r"""Block coordinate descent over a node colouring: each class's centres move to their exact 1-D minimisers.

    Incidences (two per edge) are sorted by (class of the centre, hinge); a
    hinge seen from its endpoint i has slope −α and offset :math:`βη_j`, from
    its endpoint j slope β and offset :math:`-αη_i`.
    """

    def __init__(self, edges: PairEdges, n: int):
        node_colour = colour_nodes(edges.i, edges.j, n)
        self.classes = int(node_colour.max()) + 1 if n else 0
        by_class = np.argsort(node_colour, kind="stable")
        self.node_bounds = np.searchsorted(node_colour[by_class], np.arange(self.classes + 1))
        self.centres = by_class
        rank = np.empty(n, np.int64)
        rank[by_class] = np.arange(n) - self.node_bounds[node_colour[by_class]]
        m = len(edges.i)
        centre = np.concatenate([edges.i, edges.j])
        self.other = np.concatenate([edges.j, edges.i])
        self.edge = np.concatenate([np.arange(m), np.arange(m)])
        self.at_i = np.arange(2 * m) < m
        keys = node_colour[centre] * 2 + np.concatenate([edges.hinge, edges.hinge])
        self.order = np.argsort(keys, kind="stable")
        self.bounds = _class_bounds(keys[self.order], self.classes, 2)
        self.local = rank[centre]

    def bind(self, edges: PairEdges, cs: CompiledSystem) -> list[tuple]:
        pull = gate_pull(cs)
        o = self.order
        local, other, e, at_i = self.local[o], self.other[o], self.edge[o], self.at_i[o]
        w, alpha, beta = edges.weight[e], edges.alpha[e], edges.beta[e]
        slope = np.where(at_i, -alpha, beta)
        factor = np.where(at_i, beta, -alpha)  # offset = factor · η_other
        blocks = []
        for k in range(self.classes):
            centres = self.centres[self.node_bounds[k]:self.node_bounds[k + 1]]
            q0, h0, h1 = self.bounds[2 * k], self.bounds[2 * k + 1], self.bounds[2 * k + 2]
            q, h = slice(q0, h0), slice(h0, h1)
            curvature = 2 * np.bincount(local[q], w[q], minlength=len(centres))
            blocks.append((centres, curvature, pull[centres], local[q], other[q], w[q],
                           local[h], other[h], w[h], slope[h], factor[h]))
        return blocks

    @staticmethod
    def sweep(bound, objective: Objective, state: State, tau: float, frozen):
        eta = np.asarray(state.eta)
        x = eta.copy()
        anchor = eta - tau * remaining_gradient(objective, eta, PROX_FORMS)  # unclipped: the 1-D problem holds the box
        for centres, curvature, pull, ql, qo, qw, hl, ho, hw, slope, factor in bound:
            m = len(centres)
            b = anchor[centres] / tau + pull + 2 * np.bincount(ql, qw * x[qo], minlength=m)
            x[centres] = minimise_star(1 / tau + curvature, b, hl, slope, factor * x[ho], hw)
            if frozen is not None:
                x[frozen] = eta[frozen]
        return x


# --- the solvers -------------------------------------------------------------------------------------------------


@register_solver
class Proximal(AbstractSolver):
    r"""Forward–backward splitting: explicit steps on :math:`r`, closed-form proxes on the edges.

    One proposal is one sweep at step τ (``proximal.tau``, capped by the
    stability guard's step); O(edges) per sweep, no Python loop over edges.

    - ``block="pair"``: :math:`x = η - τ∇𝓞(η)` (every term), then, class by
      class over a greedy colouring of the quadratic and hinge edges into
      matchings (Gauss–Seidel across classes, vectorised within one), both
      endpoints of each edge move to the box prox of :math:`τw_eφ_e` at the
      anchor :math:`x + τw_e∇φ_e(η)`, which trades the edge's explicit step for
      its implicit one. Anchoring at :math:`\mathrm{clip}(η - τ∇r(η))` alone
      (plain splitting) has fixed points O(τ) away from the minimiser (their
      projected gradient stays ≈ 1.5τ on ``standard_system(20)``); with the
      trade, a fixed point of the sweep is exactly a box-KKT point: the last
      class can return η only if its anchor was η, and so back to :math:`x`.
    - ``block="star"``: over a greedy colouring of the nodes, every centre c of
      a class moves to the exact minimiser over [0, 1] of
      :math:`(η_c - u_c)^2/2τ + Σ_{e∋c} w_eφ_e - G_cη_c` (:math:`G_c` its gate
      benefits) with its neighbours at their current values
      (:func:`minimise_star`), where :math:`u = η - τ∇r(η)` is left unclipped
      so that the box enters the 1-D problem exactly: a sweep's fixed points are
      the box-KKT points, and while τ ≤ 1/max r'' (r separable, as every kind
      today) each update is a majorise–minimise step.

    The sweep is accepted when its objective value is at most the loop's
    threshold (reason ``"prox"``); otherwise the state stays and τ halves for
    the next sweep. Coordinates outside the active-set mask are held at their
    value throughout. Colourings are computed at reset, once per edge
    structure; re-weightings only rebind the weights.

    >>> from complexity_from_constraints.entities import System, LandauModule, QuadraticCoupling, DirectedHingeCoupling, RelaxConfig, ProximalConfig
    >>> from complexity_from_constraints.projectors import relax
    >>> s = System(id="s", modules=[LandauModule(id="a", a=-1.0, eta0=0.1), LandauModule(id="b", a=0.5, h=0.2, eta0=0.9)],
    ...            couplings=[QuadraticCoupling(id="ab", i="a", j="b"),
    ...                       DirectedHingeCoupling(id="h", i="b", j="a", weight=2.0)])
    >>> [round(relax(s, RelaxConfig(solver="proximal", steps=500, proximal=ProximalConfig(block=b))).energy, 9)
    ...  for b in ("pair", "star")]
    [-0.133058233, -0.133058233]
    """

    name = "proximal"
    numpy_only = True

    def __init__(self, config):
        super().__init__(config)
        self.tau = config.proximal.tau
        self.structure: tuple | None = None
        self.sweeper: _PairSweep | _StarSweep | None = None
        self.bound: list[tuple] = []
        self.bound_to: Objective | None = None

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        self._bind(objective)

    def _bind(self, objective: Objective) -> None:
        edges = PairEdges.of(objective.cs)
        structure = edges.structure(objective.cs.n)
        if structure != self.structure:
            sweeper = _StarSweep if self.config.proximal.block == "star" else _PairSweep
            self.sweeper, self.structure = sweeper(edges, objective.cs.n), structure
        self.bound = self.sweeper.bind(edges, objective.cs)
        self.bound_to = objective

    def propose(self, ctx: StepContext) -> Proposal:
        if ctx.objective is not self.bound_to:
            self._bind(ctx.objective)
        tau = min(self.tau, ctx.step_cap)
        frozen = None if ctx.mask is None else np.flatnonzero(np.asarray(ctx.mask) == 0)
        x = self.sweeper.sweep(self.bound, ctx.objective, ctx.state, tau, frozen)
        x = x.astype(np.asarray(ctx.state.eta).dtype, copy=False)
        ev = ctx.objective.evaluate(x)
        ok = ev.value <= ctx.threshold
        return Proposal.of(x, ev, tau, 0, ok, "prox" if ok else _failure(ev.value))

    def feedback(self, proposal: Proposal, accepted: bool, previous: State) -> None:
        if not accepted:
            self.tau = proposal.step_size * 0.5

    def export_state(self) -> dict | None:
        return {"tau": self.tau}

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict) -> None:
        self.reset(objective, state, step, mask)
        self.tau = saved["tau"]


def _norm(v: np.ndarray) -> float:
    return math.sqrt(float(np.sum(v * v)))  # not np.linalg.norm: its BLAS call costs more than the sum at this size


def _failure(value: float) -> str:
    return "energy_increase" if math.isfinite(value) else "not_finite"


@register_solver
class Admm(AbstractSolver):
    r"""Linearised ADMM on the quadratic and hinge edges, with its own iterate :math:`(η, s, u)`.

    Edge k has a linear gap :math:`d_k = c_{i,k}η_i + c_{j,k}η_j` (quadratic:
    :math:`η_i - η_j`; hinge: :math:`βη_j - αη_i`) and a split copy
    :math:`s_k` carrying its energy :math:`w_kψ_k(s_k)`, :math:`ψ = s^2` or
    :math:`\max(0, s)^2`. With ρ = ``admm.rho``, one iteration is

    .. math::
        s &= \arg\min_s w ψ(s) + \tfrac ρ2 (s - d + u)^2
           = \begin{cases} ρ(d - u)/(ρ + 2w) & \text{quadratic, or hinge with } d - u > 0 \\
                           d - u & \text{hinge with } d - u ≤ 0 \end{cases} \\
        η &← \mathrm{clip}\big(η - α(∇r(η) - ρ Aᵀ(s - d + u))\big) \\
        u &← u + s - d(η)

    with α = ``admm.step_size`` (capped by the stability guard) and :math:`∇r`
    everything else, gate benefits included. A hinge's split copy is left free
    below 0, where its energy is 0: clipping it at 0 would enforce the gap
    instead of penalising it. Each step proposes the new iterate, with
    diagnostics ``primal_residual`` :math:`‖s - d‖` and ``dual_residual``
    :math:`ρ‖d - d_{prev}‖`; the loop accepts it only when its objective is at
    most the best accepted one (reason ``"admm"``, else ``"above_best"``), and
    ADMM continues from its own iterate either way, so the run returns the
    best accepted state. :meth:`reset` restarts the iterate from the given
    state with :math:`s = d`, :math:`u = 0`. Coordinates outside the
    active-set mask do not move.
    """

    name = "admm"
    inner_state = True
    numpy_only = True

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        e = self.edges = PairEdges.of(objective.cs)
        self.coef_i = np.where(e.hinge, -e.alpha, 1.0)
        self.coef_j = np.where(e.hinge, e.beta, -1.0)
        self.eta = np.array(state.eta, np.float64)
        self.s = self.gap(self.eta)
        self.u = np.zeros_like(self.s)

    def gap(self, eta: np.ndarray) -> np.ndarray:
        return self.coef_i * eta[self.edges.i] + self.coef_j * eta[self.edges.j]

    def export_state(self) -> dict | None:
        return {"eta": self.eta, "s": self.s, "u": self.u}

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict) -> None:
        self.reset(objective, state, step, mask)
        self.eta, self.s, self.u = saved["eta"], saved["s"], saved["u"]

    def propose(self, ctx: StepContext) -> Proposal:
        cfg, e, n = self.config.admm, self.edges, ctx.objective.cs.n
        rho, eta = cfg.rho, self.eta
        d = self.gap(eta)
        x = d - self.u
        s = np.where(e.hinge & (x <= 0), x, rho * x / (rho + 2 * e.weight))
        r = rho * (s - d + self.u)
        grad = (remaining_gradient(ctx.objective, eta, PAIR_FORMS)
                - np.bincount(e.i, r * self.coef_i, minlength=n) - np.bincount(e.j, r * self.coef_j, minlength=n))
        if ctx.mask is not None:
            grad = grad * np.asarray(ctx.mask)
        step = min(cfg.step_size, ctx.step_cap)
        eta = np.clip(eta - step * grad, 0.0, 1.0)
        d_new = self.gap(eta)
        self.eta, self.s, self.u = eta, s, self.u + s - d_new
        diagnostics = {"primal_residual": _norm(s - d_new), "dual_residual": rho * _norm(d_new - d)}
        proposal = eta.astype(np.asarray(ctx.state.eta).dtype)  # a copy: the iterate moves on, the state must not
        ev = ctx.objective.evaluate(proposal)
        ok = ev.value <= ctx.threshold
        return Proposal.of(proposal, ev, step, 0, ok, "admm" if ok else "above_best", diagnostics)
