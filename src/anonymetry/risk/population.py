"""Population uniqueness: how many people in the *population* are unique on the QIs, estimated
from the sample's equivalence-class sizes.

Four estimators, following the definitions used by ARX (``arx-deidentifier/arx``,
``src/main/org/deidentifier/arx/risk/``: ``ModelPitman``, ``ModelZayatz``, ``ModelSNB`` and the
decision rule in ``RiskModelPopulationUniqueness``), reimplemented with NumPy/SciPy:

- **Pitman** (Hoshino 2001): fit the Pitman sampling formula's (θ, α) by maximum likelihood
  (the two score equations, closed forms with digamma), then
  ``U = Γ(θ+1) / Γ(θ+α) · N^α`` population uniques.
- **Zayatz** (1991): the share of sample uniques that are population uniques, from
  hypergeometric probabilities of drawing one member of a class of each observed size;
  ``U = f₁ · P(unique | sample unique) / f``.
- **SNB** (Chen & Keller-McNulty 1998): a slide negative binomial model; the number of
  non-empty population classes ``K`` from Haas & Stokes' Shlosser-type estimator, then
  (α, β) solved from the expected counts of size-1 and size-2 classes; ``U = K · β^α``.
- **Dankar** (Dankar et al. 2012, "Estimating the re-identification risk of clinical data
  sets"): sampling fraction ≤ 10 % → Pitman (Zayatz if Pitman has no valid result);
  otherwise the smaller of Zayatz and SNB (Zayatz if SNB has no valid result).

Every result is a *fraction of the population* (``U / N``), as ARX reports it. An estimator that
does not converge or leaves ``[0, N]`` has no valid result: it is reported as ``None`` (ARX
reports 0 and an "unavailable" flag). With no sample uniques every estimate is 0.

Two details are kept exactly as ARX has them, so the numbers are comparable with ARX's (tests
pin ARX's published values on the adult data to 4 decimals): the population size for a
sampling fraction ``f`` is ``round(n / f)``; and in the Shlosser estimator of ``K`` the term
``Σ ((1-f)^i (1+f)^i n_i − 1)`` subtracts 1 per observed class *size*, not per class. That
term looks like a slip against Haas & Stokes' estimator (``Σ (1-f)^i ((1+f)^i − 1) n_i``): it
makes ``K`` small, SNB rarely converges (on adult: only at f = 1), and above f = 0.1 Dankar's
rule then falls back to Zayatz — in ARX and here alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from anonymetry.errors import InvalidParameter

__all__ = [
    "PopulationUniqueness",
    "dankar",
    "pitman",
    "population_uniqueness",
    "snb",
    "zayatz",
]

#: Accuracy a solver's score equations must reach (ARX's default solver accuracy).
ACCURACY = 1e-6


@dataclass(frozen=True, slots=True)
class _Histogram:
    sizes: np.ndarray  # distinct class sizes, ascending (float)
    counts: np.ndarray  # number of classes of each size (float)
    n: float  # sample size (records)
    N: float  # population size
    u: float  # number of classes in the sample

    @property
    def f(self) -> float:
        return self.n / self.N

    def classes_of_size(self, size: int) -> float:
        hit = self.counts[self.sizes == size]
        return float(hit[0]) if hit.size else 0.0


def _histogram(class_sizes: Mapping[int, int], population: int) -> _Histogram:
    items = sorted((int(s), int(c)) for s, c in class_sizes.items() if int(c) > 0)
    if not items or items[0][0] < 1:
        raise InvalidParameter(
            "population uniqueness: need a class-size histogram {size ≥ 1: count ≥ 1}"
        )
    sizes = np.array([s for s, _ in items], dtype=float)
    counts = np.array([c for _, c in items], dtype=float)
    n = float(np.dot(sizes, counts))
    if not (isinstance(population, int) and population >= n):
        raise InvalidParameter(
            f"population: need an integer population size ≥ the sample size ({int(n)}), "
            f"got {population!r}"
        )
    return _Histogram(sizes, counts, n, float(population), float(counts.sum()))


def _valid(value: float | None, h: _Histogram) -> bool:
    return value is not None and math.isfinite(value) and 0.0 < value <= h.N


# --- Pitman ---------------------------------------------------------------------------------


def _pitman_scores(x: np.ndarray, h: _Histogram) -> np.ndarray:
    from scipy import special  # imported on use: SciPy takes ~1 s to load
    t, a = float(x[0]), float(x[1])
    u1 = h.u - 1.0
    psi_hi = special.digamma(u1 + t / a + 1.0)
    psi_lo = special.digamma(t / a + 1.0)
    o1 = (psi_hi - psi_lo) / a  # Σ_{i<u} 1/(θ+iα)
    o3 = (-t * psi_hi + a * u1 + t * psi_lo) / (a * a)  # Σ_{i<u} i/(θ+iα)
    o2 = special.digamma(h.n + t) - special.digamma(t + 1.0)  # Σ_{i<n} 1/(θ+i)
    big = h.sizes != 1
    o4 = float(
        np.dot(h.counts[big], special.digamma(h.sizes[big] - a) - special.digamma(1.0 - a))
    )  # Σ_k c_k Σ_{j<k} 1/(j-α)
    return np.array([o1 - o2, o3 - o4])


def _pitman_jacobian(x: np.ndarray, h: _Histogram) -> np.ndarray:
    from scipy import special  # imported on use: SciPy takes ~1 s to load
    t, a = float(x[0]), float(x[1])
    u1 = h.u - 1.0
    v1 = special.digamma(u1 + t / a + 1.0)
    v2 = special.polygamma(1, (a + t + a * u1) / a)
    v3 = special.polygamma(1, t / a + 1.0)
    v4 = special.digamma(t / a + 1.0)
    a2 = a * a
    d1 = (v3 - v2) / a2
    d5 = (a * v1 + t * v2 - a * v4 - t * v3) / (a2 * a)
    d3 = (a2 * u1 - t * t * v2 + t * t * v3 - 2 * a * t * v1 + 2 * a * t * v4) / (a2 * a2)
    d2 = special.polygamma(1, t + 1.0) - special.polygamma(1, h.n + t)
    big = h.sizes != 1
    trig = special.polygamma(1, 1.0 - a) - special.polygamma(1, h.sizes[big] - a)
    d4 = float(np.dot(h.counts[big], trig))
    # ∂(o1-o2)/∂θ, ∂(o1-o2)/∂α ; ∂(o3-o4)/∂θ, ∂(o3-o4)/∂α
    return np.array([[d2 - d1, -d5], [-d5, -d3 - d4]])


def _newton(fun: Any, jac: Any, x0: np.ndarray, iterations: int = 1000) -> np.ndarray | None:
    """Plain 2-D Newton–Raphson (as ARX's solver): stop when both scores are below ACCURACY."""
    x = np.array(x0, dtype=float)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            fx = fun(x)
            if not np.all(np.isfinite(fx)):
                return None
            if np.all(np.abs(fx) <= ACCURACY):
                return x
            try:
                step = np.linalg.solve(jac(x), fx)
            except np.linalg.LinAlgError:
                return None
            if not np.all(np.isfinite(step)):
                return None
            x = x - step
    return None


def pitman(class_sizes: Mapping[int, int], population: int) -> float | None:
    """Pitman's estimate of the population-unique fraction, or ``None`` if it has none."""
    from scipy import optimize, special  # imported on use: SciPy takes ~1 s to load
    h = _histogram(class_sizes, population)
    c1 = h.classes_of_size(1)
    if c1 == 0:
        return 0.0
    c2 = h.classes_of_size(2) or 1.0  # ARX: overestimate when there are no pairs
    n, u = h.n, h.u
    c = c1 * (c1 - 1) / c2
    t0 = (n * u * c - c1 * (n - 1) * (2 * u + c)) / (2 * c1 * u + c1 * c - n * c)
    a0 = (t0 * (c1 - n) + (n - 1) * c1) / (n * u)
    root = _newton(lambda x: _pitman_scores(x, h), lambda x: _pitman_jacobian(x, h),
                   np.array([t0, a0]))
    if root is None:  # ARX retries with another formulation; a generic solver plays that role
        with np.errstate(all="ignore"):
            sol = optimize.root(lambda x: _pitman_scores(x, h), np.array([t0, a0]),
                                jac=lambda x: _pitman_jacobian(x, h), method="hybr")
            ok = sol.success and np.all(np.abs(_pitman_scores(sol.x, h)) <= ACCURACY)
        root = sol.x if ok else None
    if root is None or root[0] < 0 or root[1] == 0:
        return None
    t, a = float(root[0]), float(root[1])
    with np.errstate(all="ignore"):
        uniques = math.exp(special.gammaln(t + 1.0) - special.gammaln(t + a)) * h.N**a
    return uniques / h.N if 0.0 <= uniques <= h.N else None


# --- Zayatz ---------------------------------------------------------------------------------


def zayatz(class_sizes: Mapping[int, int], population: int) -> float | None:
    """Zayatz's estimate of the population-unique fraction, or ``None`` if it has none."""
    from scipy import stats  # imported on use: SciPy takes ~1 s to load
    h = _histogram(class_sizes, population)
    c1 = h.classes_of_size(1)
    if c1 == 0:
        return 0.0
    big_n, n = int(h.N), int(h.n)
    # P(exactly one of a population class of size K lands in a sample of n from N), K = the
    # observed sample class size (as in ARX's implementation).
    p_one = stats.hypergeom(big_n, h.sizes.astype(np.int64), n).pmf(1)
    denom = float(np.dot(h.counts / h.u, p_one))
    p_unique = (c1 / h.u) * float(stats.hypergeom(big_n, 1, n).pmf(1))
    if denom <= 0.0:
        return None
    uniques = c1 * (p_unique / denom) / h.f
    return uniques / h.N


# --- SNB ------------------------------------------------------------------------------------


def _shlosser_k(h: _Histogram) -> float:
    f = h.f
    c1 = h.classes_of_size(1)
    f2 = f * f
    var1 = float(np.sum(h.sizes * f2 * (1 - f2) ** (h.sizes - 1) * h.counts))
    val2 = (1 - f) ** h.sizes * h.counts
    var2 = float(np.sum(val2 * (1 + f) ** h.sizes - 1))  # ARX: −1 per size bucket
    var3 = float(np.sum(val2))
    var4 = float(np.sum(h.sizes * f * (1 - f) ** (h.sizes - 1) * h.counts))
    return h.u + c1 * (var1 / var2) * (var3 / var4) ** 2


def snb(class_sizes: Mapping[int, int], population: int) -> float | None:
    """The SNB estimate of the population-unique fraction, or ``None`` if it has none."""
    h = _histogram(class_sizes, population)
    c1 = h.classes_of_size(1)
    if c1 == 0:
        return 0.0
    c2 = h.classes_of_size(2)
    f = h.f
    if f >= 1.0:  # the sample is the population: its uniques are the population's
        return c1 / h.N
    root = _snb_solve(_shlosser_k(h), f, c1, c2)
    if root is None:
        return None
    k, a, b = root
    with np.errstate(all="ignore"):
        uniques = float(k * np.float64(b) ** np.float64(a))
    return uniques / h.N if math.isfinite(uniques) and 0.0 <= uniques <= h.N else None


def _snb_solve(k: float, f: float, c1: float, c2: float) -> tuple[float, float, float] | None:
    """Solve SNB's two moment equations for (α, β) given ``K``; ``(K, α, β)`` or ``None``.

    E[#sample classes of size 1] and of size 2 under the slide negative binomial model equal
    the observed ``c1`` and ``c2`` (Chen & Keller-McNulty 1998, as written in ARX).
    """
    from scipy import optimize  # imported on use: SciPy takes ~1 s to load

    def scores(x: np.ndarray) -> np.ndarray:
        a, b = np.float64(x[0]), np.float64(x[1])  # NumPy floats: inf/nan, not exceptions
        d = (1 - f) * (1 - b)
        return np.array([
            k * f * (b / (1 - d)) ** a * (a * d / (1 - d) + 1) - c1,
            k * a * b**a * f * f * (1 - b) / 2 * (1 - d) ** (a + 2) * (2 - (1 - a) * d) - c2,
        ])

    # ARX's deterministic start grid: α, β ∈ {0, 0.33, 0.66, 0.99}, the first that converges.
    grid = [0.0, 0.33, 0.66, 0.99]
    for a0 in grid:
        for b0 in grid:
            with np.errstate(all="ignore"):
                sol = optimize.root(scores, np.array([a0, b0]), method="hybr")
                fx = scores(sol.x)
            if sol.success and np.all(np.isfinite(fx)) and np.all(np.abs(fx) <= ACCURACY):
                return k, float(sol.x[0]), float(sol.x[1])
    return None


# --- Dankar's decision rule -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PopulationUniqueness:
    """The four estimates (fractions of the population; ``None``: no valid estimate)."""

    population: int
    sampling_fraction: float
    pitman: float | None
    zayatz: float | None
    snb: float | None
    dankar: float
    dankar_model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "sampling_fraction": self.sampling_fraction,
            "pitman": self.pitman,
            "zayatz": self.zayatz,
            "snb": self.snb,
            "dankar": self.dankar,
            "dankar_model": self.dankar_model,
        }


def dankar(class_sizes: Mapping[int, int], population: int) -> tuple[float, str]:
    """Dankar et al.'s choice: ``(fraction, model name)``; 0 when no model is valid."""
    return _decide(_histogram(class_sizes, population), class_sizes, population, {})


def _decide(
    h: _Histogram, sizes: Mapping[int, int], population: int, cache: dict[str, float | None]
) -> tuple[float, str]:
    def get(name: str) -> float | None:
        if name not in cache:
            cache[name] = {"pitman": pitman, "zayatz": zayatz, "snb": snb}[name](sizes, population)
        return cache[name]

    if h.classes_of_size(1) == 0:
        return 0.0, "none"
    if h.f <= 0.1:
        p = get("pitman")
        if _valid(p, h):
            return float(p), "pitman"  # type: ignore[arg-type]
        z = get("zayatz")
        return (float(z), "zayatz") if _valid(z, h) else (0.0, "none")  # type: ignore[arg-type]
    s, z = get("snb"), get("zayatz")
    if _valid(s, h) and _valid(z, h):
        return (float(z), "zayatz") if z < s else (float(s), "snb")  # type: ignore[operator,arg-type]
    if _valid(s, h):
        return float(s), "snb"  # type: ignore[arg-type]
    return (float(z), "zayatz") if _valid(z, h) else (0.0, "none")  # type: ignore[arg-type]


def population_uniqueness(class_sizes: Mapping[int, int], population: int) -> PopulationUniqueness:
    """All four estimates from a class-size histogram ``{size: number of classes}``."""
    h = _histogram(class_sizes, population)
    cache: dict[str, float | None] = {}
    for name, fn in (("pitman", pitman), ("zayatz", zayatz), ("snb", snb)):
        cache[name] = fn(class_sizes, population)
    value, model = _decide(h, class_sizes, population, cache)
    return PopulationUniqueness(
        population=population,
        sampling_fraction=h.f,
        pitman=cache["pitman"],
        zayatz=cache["zayatz"],
        snb=cache["snb"],
        dankar=value,
        dankar_model=model,
    )
