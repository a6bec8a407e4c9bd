"""Test statistics with stated error rates, shared by the statistical tests.

Every test here fixes the significance level ``ALPHA = 1e-6`` per assertion (a correct
mechanism fails a given assertion with probability ≤ 1e-6) and sizes its sample so that a
20 % error in the noise scale (0.8× or 1.2×) is rejected with probability ≥ 0.999
(``BETA = 1e-3``). The arithmetic is non-asymptotic where it can be:

*Kolmogorov–Smirnov with the DKW bound* (Dvoretzky–Kiefer–Wolfowitz, Massart 1990): for n
i.i.d. draws with CDF F and empirical CDF F_n, P(sup|F_n − F| > t) ≤ 2·exp(−2nt²), for any F
(discrete too). So rejecting when sup|F_n − F_0| > t_α = √(ln(2/α)/(2n)) has size ≤ α, and if
the true F_1 has sup|F_1 − F_0| = D, it rejects with probability ≥ 1 − β whenever
D ≥ t_α + t_β. :func:`dkw_required_n` solves this for n; tests assert their n meets it.

*Binomial counts* use exact tails (``scipy.stats.binom``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

ALPHA = 1e-6
BETA = 1e-3
SCALE_ERRORS = (0.8, 1.2)


def dkw_threshold(n: int, alpha: float = ALPHA) -> float:
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def dkw_required_n(distance: float, alpha: float = ALPHA, beta: float = BETA) -> int:
    """Smallest n with t_α + t_β ≤ ``distance``."""
    root = (math.sqrt(math.log(2 / alpha) / 2) + math.sqrt(math.log(2 / beta) / 2)) / distance
    return math.ceil(root ** 2)


def ks_distance(samples: Sequence[float], cdf: Callable[[float], float], *,
                discrete: bool) -> float:
    """sup_x |F_n(x) − F(x)|, evaluated at the sample points (and just below them when the
    distribution is continuous; for integer data the sup over reals is attained at integers and
    at their left limits, i.e. at x − 1)."""
    xs = sorted(samples)
    n = len(xs)
    d = 0.0
    i = 0
    while i < n:
        x = xs[i]
        j = i
        while j < n and xs[j] == x:
            j += 1
        f = cdf(x)
        d = max(d, abs(j / n - f))
        below = cdf(x - 1) if discrete else f
        d = max(d, abs(i / n - below))
        i = j
    return d


def sup_distance(cdf_a: Callable[[float], float], cdf_b: Callable[[float], float],
                 grid: Sequence[float]) -> float:
    return max(abs(cdf_a(x) - cdf_b(x)) for x in grid)


# -- CDFs of |noise| (folded), the statistic the scale tests use -------------------------------
def folded_laplace_cdf(scale: float) -> Callable[[float], float]:
    return lambda t: 0.0 if t < 0 else 1 - math.exp(-t / scale)


def folded_discrete_laplace_cdf(scale: float) -> Callable[[float], float]:
    """|X| for P(X = x) ∝ exp(−|x|/scale): P(|X| ≤ m) = 1 − 2q^{m+1}/(1+q), q = e^{−1/scale}."""
    q = math.exp(-1 / scale)

    def cdf(t: float) -> float:
        if t < 0:
            return 0.0
        m = math.floor(t)
        return 1 - 2 * q ** (m + 1) / (1 + q)

    return cdf


def folded_gaussian_cdf(sigma: float) -> Callable[[float], float]:
    return lambda t: 0.0 if t < 0 else math.erf(t / (sigma * math.sqrt(2)))


def folded_discrete_gaussian_cdf(sigma: float) -> Callable[[float], float]:
    """|X| for P(X = x) ∝ exp(−x²/(2σ²)), normalized numerically over ±(40σ + 10)."""
    top = int(40 * sigma + 10)
    w = [math.exp(-(x * x) / (2 * sigma * sigma)) for x in range(top + 1)]
    z = w[0] + 2 * sum(w[1:])
    cum = []
    acc = 0.0
    for m in range(top + 1):
        acc += (w[0] if m == 0 else 2 * w[m]) / z
        cum.append(min(acc, 1.0))

    def cdf(t: float) -> float:
        if t < 0:
            return 0.0
        m = math.floor(t)
        return 1.0 if m > top else cum[m]

    return cdf


def folded_cdf(kind: str, scale: float, integer: bool) -> Callable[[float], float]:
    if kind == "laplace":
        return folded_discrete_laplace_cdf(scale) if integer else folded_laplace_cdf(scale)
    return folded_discrete_gaussian_cdf(scale) if integer else folded_gaussian_cdf(scale)


def power_distance(kind: str, scale: float, integer: bool) -> float:
    """The smallest sup-distance between the claimed folded CDF and one whose scale is off by
    20 % either way — what the sample size must be able to detect."""
    f0 = folded_cdf(kind, scale, integer)
    grid = [scale * i / 50 for i in range(50 * 12)]
    return min(sup_distance(f0, folded_cdf(kind, scale * e, integer), grid)
               for e in SCALE_ERRORS)
