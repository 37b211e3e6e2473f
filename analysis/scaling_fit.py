"""Scaling-law fits on (C, N, D, L) points, as Hoffmann et al. 2022 (Chinchilla) fit theirs.

- Approach 2, IsoFLOP: per budget C a parabola of L over ln N; its minimum is N_opt(C), and D_opt(C) is read off
  the budget's own (N, D) line at N_opt. Then N_opt ∝ C^a and D_opt ∝ C^b, fitted on log scale.
- Approach 3, parametric: L(N, D) = E + A/N^α + B/D^β, a Huber loss (δ = 1e-3) on log L minimised (BFGS, no
  bounds, as their L-BFGS) from a grid of starts. Its compute-optimal exponents are a = β/(α+β), b = α/(α+β).
Confidence intervals: percentiles of a bootstrap over runs (resampled within each budget for the IsoFLOP fit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product

import numpy as np

# Hoffmann et al. 2022: the parametric fit (approach 3, eq. 10) and the IsoFLOP exponents (approach 2, table 2).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28, "a": 0.49, "b": 0.51}
HUBER_DELTA = 1e-3
CI = (2.5, 97.5)  # a 95% percentile interval


@dataclass(frozen=True)
class Point:
    """One finished run: its budget C (FLOPs), parameters N, tokens trained D and final loss L."""

    budget: float
    params: float
    tokens: float
    loss: float
    label: str = ""


@dataclass(frozen=True)
class Parabola:
    """L = c2·x² + c1·x + c0 over x = ln N, fitted to one budget's runs."""

    budget: float
    coef: tuple[float, float, float]  # c2, c1, c0
    x_range: tuple[float, float]  # ln N of the smallest and largest model trained
    tokens_line: tuple[float, float]  # ln D = slope·ln N + intercept over the budget's runs

    @property
    def opens_up(self) -> bool:
        return self.coef[0] > 0

    @property
    def x_min(self) -> float | None:
        """ln N at the minimum (None when the parabola has none)."""
        c2, c1, _ = self.coef
        return -c1 / (2 * c2) if c2 > 0 else None

    @property
    def interior(self) -> bool:
        """A minimum inside the sizes trained (an extrapolated one says little)."""
        x = self.x_min
        return x is not None and self.x_range[0] <= x <= self.x_range[1]

    def loss(self, x):
        return np.polyval(self.coef, x)

    @property
    def optimum(self) -> tuple[float, float, float] | None:
        """(N_opt, D_opt, L at the minimum), or None without a minimum."""
        x = self.x_min
        if x is None:
            return None
        slope, intercept = self.tokens_line
        return math.exp(x), math.exp(slope * x + intercept), float(self.loss(x))


def fit_parabola(points: Sequence[Point]) -> Parabola | None:
    """The parabola of one budget's points; None with fewer than 3 distinct sizes."""
    x = np.log([p.params for p in points])
    if len(set(np.round(x, 12))) < 3:
        return None
    y = np.array([p.loss for p in points])
    coef = np.polyfit(x, y, 2)
    line = np.polyfit(x, np.log([p.tokens for p in points]), 1)
    c2, c1, c0 = (float(v) for v in coef)
    return Parabola(points[0].budget, (c2, c1, c0), (float(x.min()), float(x.max())), (float(line[0]), float(line[1])))


def by_budget(points: Sequence[Point]) -> dict[float, list[Point]]:
    groups: dict[float, list[Point]] = {}
    for p in points:
        groups.setdefault(p.budget, []).append(p)
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class PowerLaw:
    """y = k·C^exponent, with a bootstrap interval on the exponent."""

    exponent: float
    coefficient: float
    ci: tuple[float, float] | None
    budgets: int  # budgets (minima) the fit used

    def __call__(self, c):
        return self.coefficient * np.asarray(c, dtype=float) ** self.exponent


def power_law(c: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(exponent, coefficient) of y = k·c^e, least squares on log scale."""
    e, log_k = np.polyfit(np.log(c), np.log(y), 1)
    return float(e), float(math.exp(log_k))


@dataclass
class IsoFlopFit:
    parabolas: list[Parabola]
    used: list[Parabola]  # the parabolas whose interior minimum entered the power laws
    params: PowerLaw | None  # N_opt(C)
    tokens: PowerLaw | None  # D_opt(C)
    bootstrap: int = 0  # resamples that gave both exponents
    bootstrap_tried: int = 0
    why_not: str = ""  # why there is no power law, in words


def _optima(parabolas: list[Parabola]) -> list[Parabola]:
    return [p for p in parabolas if p.interior]


def _laws(used: list[Parabola]) -> tuple[tuple[float, float], tuple[float, float]]:
    budgets = [p.budget for p in used]
    optima = [p.optimum for p in used]
    return power_law(budgets, [o[0] for o in optima]), power_law(budgets, [o[1] for o in optima])


def fit_isoflop(points: Sequence[Point], *, n_boot: int = 1000, seed: int = 0) -> IsoFlopFit:
    """IsoFLOP parabolas, and N_opt(C), D_opt(C) from their interior minima (needs two budgets with one)."""
    groups = by_budget(points)
    parabolas = [p for p in (fit_parabola(g) for g in groups.values()) if p is not None]
    used = _optima(parabolas)
    fit = IsoFlopFit(parabolas=parabolas, used=used, params=None, tokens=None)
    if len(used) < 2:
        few = [f"{c:.3g}" for c, g in groups.items() if len({q.params for q in g}) < 3]
        fit.why_not = (
            f"{len(used)} budget(s) have a minimum inside the sizes they trained; a power law needs 2"
            + (f" (budgets with fewer than 3 sizes: {', '.join(few)})" if few else "")
            + ": add sizes on the side the loss still falls, or budgets"
        )
        return fit
    (a, ka), (b, kb) = _laws(used)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        resampled = []
        for g in groups.values():
            pick = [g[i] for i in rng.integers(0, len(g), len(g))]
            resampled.append(fit_parabola(pick))
        ok = _optima([p for p in resampled if p is not None])
        if len(ok) >= 2 and len({p.budget for p in ok}) >= 2:
            (sa, _), (sb, _) = _laws(ok)
            samples.append((sa, sb))
    fit.bootstrap, fit.bootstrap_tried = len(samples), n_boot
    ci_a = ci_b = None
    if samples:
        arr = np.array(samples)
        ci_a = tuple(float(v) for v in np.percentile(arr[:, 0], CI))
        ci_b = tuple(float(v) for v in np.percentile(arr[:, 1], CI))
    fit.params = PowerLaw(a, ka, ci_a, len(used))
    fit.tokens = PowerLaw(b, kb, ci_b, len(used))
    return fit


# --- approach 3: L(N, D) = E + A/N^α + B/D^β -------------------------------------------------------------------

NAMES = ("E", "A", "B", "alpha", "beta")


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    """Huber loss of LSE(a - α ln N, b - β ln D, e) against ln L, and its gradient in θ = (a, b, e, α, β)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    r = top + np.log(total) - log_l
    weights /= total
    # Huber / δ (the same minimum): about |r| per point, a scale the optimizer's tolerances suit.
    huber = np.where(np.abs(r) <= delta, 0.5 * r**2 / delta, np.abs(r) - 0.5 * delta)
    dr = np.clip(r / delta, -1.0, 1.0)  # d(Huber/δ)/dr
    grad = np.array([
        (dr * weights[0]).sum(), (dr * weights[1]).sum(), (dr * weights[2]).sum(),
        -(dr * weights[0] * log_n).sum(), -(dr * weights[1] * log_d).sum(),
    ])  # fmt: skip
    return float(huber.sum()), grad


GRID = {"a": (0.0, 5.0, 10.0, 20.0), "b": (0.0, 5.0, 10.0, 20.0), "e": (-1.0, 0.0, 0.5), "alpha": (0.2, 0.5, 1.0),
        "beta": (0.2, 0.5, 1.0)}  # fmt: skip


def _minimise(starts, data, delta: float, keep: int = 24) -> np.ndarray:
    """BFGS from the `keep` starts with the lowest loss (of a grid of hundreds); the best end point. (scipy's
    L-BFGS-B spends most of its time in BLAS threads that wait on a busy CPU: 5-10x slower here.)"""
    from scipy.optimize import minimize

    starts = sorted((np.asarray(s, dtype=float) for s in starts), key=lambda s: _objective(s, *data, delta)[0])
    best, best_value = None, math.inf
    for start in starts[:keep]:
        res = minimize(_objective, start, args=(*data, delta), jac=True, method="BFGS", options={"gtol": 1e-6})
        if res.fun < best_value:
            best, best_value = res.x, res.fun
    return best


@dataclass
class Parametric:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # by NAMES and "a", "b"
    bootstrap: int = 0  # resamples fitted (those with at least 6 distinct runs)
    undetermined: list[str] = field(default_factory=list)  # parameters the fit ran off with: the data leave them open
    residuals: list[tuple[Point, float]] = field(default_factory=list)  # (point, predicted loss)

    def predict(self, n, d):
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a that the fit implies (C ∝ N·D)."""
        return _allocation(self.alpha, self.beta)[0]

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b."""
        return _allocation(self.alpha, self.beta)[1]

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean([(p.loss - pred) ** 2 for p, pred in self.residuals])))


def _allocation(alpha: float, beta: float) -> tuple[float, float]:
    """(a, b) of N_opt ∝ C^a, D_opt ∝ C^b implied by L = E + A/N^α + B/D^β at C ∝ N·D."""
    total = alpha + beta
    return (beta / total, alpha / total) if total > 0 else (math.nan, math.nan)


def undetermined(values: dict[str, float]) -> list[str]:
    """Parameters that ran to an edge no law has (a term that vanishes, an exponent <= 0.01 or >= 5): the runs
    do not pin them down."""
    edges = {"E": values["E"] < 1e-3, "A": values["A"] < 1e-6, "B": values["B"] < 1e-6,
             "alpha": not 0.01 < values["alpha"] < 5, "beta": not 0.01 < values["beta"] < 5}  # fmt: skip
    return [name for name, off in edges.items() if off]


def _theta_to_fit(theta) -> dict[str, float]:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": alpha, "beta": beta}


def fit_parametric(points: Sequence[Point], *, n_boot: int = 200, seed: int = 0,
                   delta: float = HUBER_DELTA) -> Parametric | None:  # fmt: skip
    """The parametric fit; None with fewer than 6 points (5 parameters need more) or one budget (where D is a
    function of N, so the two terms cannot be told apart)."""
    if len(points) < 6 or len({p.budget for p in points}) < 2:
        return None
    arrays = [np.log([getattr(p, k) for p in points]) for k in ("params", "tokens", "loss")]
    starts = list(product(GRID["a"], GRID["b"], GRID["e"], GRID["alpha"], GRID["beta"]))
    theta = _minimise(starts, arrays, delta)
    fit = Parametric(**_theta_to_fit(theta))
    fit.undetermined = undetermined(_theta_to_fit(theta))
    fit.residuals = [(p, float(fit.predict(p.params, p.tokens))) for p in points]
    rng = np.random.default_rng(seed)
    boot_starts = [theta, (5.0, 5.0, 0.0, 0.5, 0.5)]  # the full data's optimum, and one generic start
    samples = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(points), len(points))
        if len(set(idx)) < 6:
            continue
        values = _theta_to_fit(_minimise(boot_starts, [x[idx] for x in arrays], delta))
        values["a"], values["b"] = _allocation(values["alpha"], values["beta"])
        samples.append(values)
    fit.bootstrap = len(samples)
    if len(samples) >= max(2, n_boot // 2):  # fewer: the runs are too few to resample
        fit.ci = {k: tuple(float(v) for v in np.percentile([s[k] for s in samples], CI)) for k in samples[0]}
    return fit
