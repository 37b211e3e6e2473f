"""analysis/scaling_fit.py on synthetic runs drawn from a known L(N, D): the fits recover the exponents that made
them, inside their bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.scaling_fit import CHINCHILLA, Point, fit_isoflop, fit_parabola, fit_parametric, undetermined

E, A, B, ALPHA, BETA = (CHINCHILLA[k] for k in ("E", "A", "B", "alpha", "beta"))
TRUE_A, TRUE_B = BETA / (ALPHA + BETA), ALPHA / (ALPHA + BETA)  # N_opt ∝ C^a, D_opt ∝ C^b when C = 6ND


def law(n, d, *, e=E, a=A, b=B, alpha=ALPHA, beta=BETA):
    return e + a / n**alpha + b / d**beta


def n_opt(c: float) -> float:
    """The law's exact compute-optimal N at C = 6ND (Hoffmann et al., eq. 4)."""
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    return g * (c / 6) ** TRUE_A


def sweep(budgets=(1e18, 1e19, 1e20, 1e21), sizes=7, span=1.5, noise=0.0, seed=0, **kw) -> list[Point]:
    """Per budget, `sizes` models log-spaced within e^±span around the optimum, D = C/(6N), log-normal noise on L."""
    rng = np.random.default_rng(seed)
    points = []
    for c in budgets:
        for u in np.linspace(-span, span, sizes):
            n = n_opt(c) * math.exp(u)
            d = c / (6 * n)
            points.append(Point(c, n, d, law(n, d, **kw) * math.exp(rng.normal(0, noise)), f"{c:.0e}/{u:+.1f}"))
    return points


def test_a_parabola_finds_the_minimum_of_a_parabola():
    # L = (ln N - ln 1000)^2 + 2 at one budget; D = C/(6N)
    points = [Point(1e9, n, 1e9 / (6 * n), (math.log(n) - math.log(1000)) ** 2 + 2) for n in (100, 300, 2000, 9000)]
    parabola = fit_parabola(points)
    n, d, loss = parabola.optimum
    assert n == pytest.approx(1000) and loss == pytest.approx(2) and d == pytest.approx(1e9 / 6000)
    assert parabola.opens_up and parabola.interior


def test_no_minimum_without_three_sizes_or_when_the_loss_only_falls():
    assert fit_parabola([Point(1e9, 10, 1, 3.0), Point(1e9, 20, 1, 2.0), Point(1e9, 20, 1, 2.1)]) is None
    falling = fit_parabola([Point(1e9, n, 1e9 / n, 5 - math.log(n) ** 2 / 10) for n in (10, 100, 1000)])
    assert not falling.opens_up and falling.optimum is None and not falling.interior
    edge = fit_parabola([Point(1e9, n, 1e9 / n, (math.log(n) - math.log(5)) ** 2) for n in (10, 100, 1000)])
    assert edge.optimum[0] == pytest.approx(5) and not edge.interior  # extrapolated: left out of the power law


def test_isoflop_recovers_the_exponents_exactly_without_noise():
    fit = fit_isoflop(sweep(), n_boot=50)
    assert fit.params.budgets == 4 and len(fit.used) == 4
    # each budget's grid sits at the same place around its optimum, so the parabola's bias cancels in the slope
    assert fit.params.exponent == pytest.approx(TRUE_A, abs=1e-6)
    assert fit.tokens.exponent == pytest.approx(TRUE_B, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isoflop_recovers_known_exponents_within_their_interval(seed):
    points = sweep(noise=0.005, seed=seed, span=1.2)  # 0.5% noise on every loss
    fit = fit_isoflop(points, n_boot=300, seed=seed)
    assert fit.bootstrap > 250  # nearly every resample had two interior minima
    for law_, truth in ((fit.params, TRUE_A), (fit.tokens, TRUE_B)):
        low, high = law_.ci
        assert low <= truth <= high, (law_, truth)
        assert high - low < 0.15  # and the interval says something
    assert fit.params.exponent + fit.tokens.exponent == pytest.approx(1, abs=1e-9)  # D = C/(6N) in every run


def test_isoflop_says_why_there_is_no_power_law():
    fit = fit_isoflop(sweep(budgets=(1e20,)), n_boot=10)
    assert fit.params is None and len(fit.parabolas) == 1
    assert "1 budget(s) have a minimum inside the sizes they trained; a power law needs 2" in fit.why_not
    right_of_optimum = [p for p in sweep(budgets=(1e19,), sizes=9) if p.params > n_opt(1e19) * 1.3]
    assert len(right_of_optimum) == 4  # the loss only rises: its minimum lies outside these sizes, and is not used
    fit = fit_isoflop(right_of_optimum + sweep(budgets=(1e20,)), n_boot=10)
    assert fit.params is None and not fit.parabolas[0].interior and fit.parabolas[1].interior


def test_parametric_fit_recovers_the_law_without_noise():
    fit = fit_parametric(sweep(sizes=5), n_boot=20)
    assert fit.alpha == pytest.approx(ALPHA, rel=1e-3) and fit.beta == pytest.approx(BETA, rel=1e-3)
    assert fit.E == pytest.approx(E, rel=1e-3) and fit.A == pytest.approx(A, rel=1e-2)
    assert fit.a == pytest.approx(TRUE_A, rel=1e-3) and fit.rmse < 1e-4 and not fit.undetermined


def test_parametric_fit_recovers_known_exponents_within_their_interval():
    points = sweep(noise=0.003, seed=3)
    fit = fit_parametric(points, n_boot=60, seed=3)
    assert fit.bootstrap == 60
    for name, truth in (("alpha", ALPHA), ("beta", BETA), ("E", E), ("a", TRUE_A)):
        low, high = fit.ci[name]
        assert low <= truth <= high, (name, fit.ci[name])
    assert fit.ci["alpha"][1] - fit.ci["alpha"][0] < 0.1
    # the residuals are the noise: observed - fitted, about 0.3% of the loss
    assert 0.001 < fit.rmse < 0.03 and len(fit.residuals) == len(points)


def test_parametric_fit_needs_six_runs_of_two_budgets():
    assert fit_parametric(sweep(budgets=(1e19, 1e20), sizes=2), n_boot=5) is None  # 4 runs
    assert fit_parametric(sweep(budgets=(1e20,), sizes=9), n_boot=5) is None  # one budget: D is fixed by N


def test_parameters_the_runs_leave_open_are_named():
    law_ = {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.3, "beta": 0.3}
    assert undetermined(law_) == []
    assert undetermined({**law_, "A": 1e-9, "beta": 7.0}) == ["A", "beta"]  # no N term; a D term steeper than any
    assert undetermined({**law_, "E": 1e-5, "alpha": -0.2}) == ["E", "alpha"]
