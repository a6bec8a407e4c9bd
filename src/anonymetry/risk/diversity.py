"""ℓ-diversity of a sensitive attribute within equivalence classes (Machanavajjhala et al.,
"ℓ-Diversity: Privacy Beyond k-Anonymity", ACM TKDD 2007).

- **distinct ℓ**: the fewest distinct sensitive values in any class.
- **entropy ℓ**: ``exp(min over classes of H(class))`` with ``H = −Σ p ln p`` — a float, *not*
  floored (pyCANON floors it to an integer; tests check our value's floor equals theirs).
- **recursive (c, ℓ)**: in a class let ``r1 ≥ r2 ≥ … ≥ rm`` be the sensitive value counts sorted
  **descending**. The class is (c, ℓ)-diverse when ``r1 < c · (rℓ + rℓ+1 + … + rm)``; the table
  when every class is. :func:`recursive_cl` reports, for each ℓ from 2 to distinct ℓ, the
  threshold ``c*(ℓ) = max over classes of r1 / (rℓ + … + rm)``: the table is recursive
  (c, ℓ)-diverse exactly for ``c > c*(ℓ)``. For ℓ above distinct ℓ some class has fewer than ℓ
  values, so no c works and no entry is given. (pyCANON sorts ascending; we do not.)

A NULL sensitive value counts as one more value ("missing").
"""

from __future__ import annotations

import math

import numpy as np

from anonymetry.errors import InvalidParameter
from anonymetry.risk._engine import ClassCounts

__all__ = ["distinct_l", "entropy_l", "recursive_cl", "recursive_cl_holds"]


def _need(cc: ClassCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if cc.entry_class is None or cc.entry_code is None or cc.entry_count is None:
        raise InvalidParameter("ℓ-diversity needs a sensitive attribute (--sensitive)")
    return cc.entry_class, cc.entry_code, cc.entry_count


def _distinct_per_class(cc: ClassCounts) -> np.ndarray:
    cls, _, _ = _need(cc)
    return np.bincount(cls, minlength=cc.n_classes)


def distinct_l(cc: ClassCounts) -> int:
    """The fewest distinct sensitive values in any class."""
    return int(_distinct_per_class(cc).min())


def class_entropy(cc: ClassCounts) -> np.ndarray:
    """Shannon entropy (nats) of the sensitive values in each class."""
    cls, _, cnt = _need(cc)
    q = cnt / cc.class_size[cls]
    return -np.bincount(cls, weights=q * np.log(q), minlength=cc.n_classes)


def entropy_l(cc: ClassCounts) -> float:
    """``exp`` of the smallest class entropy (a float ≥ 1)."""
    return float(math.exp(max(0.0, float(class_entropy(cc).min()))))


def recursive_cl(cc: ClassCounts) -> dict[int, float]:
    """``{ℓ: c*(ℓ)}`` for ℓ = 2 … distinct ℓ; (c, ℓ) holds for every ``c > c*(ℓ)``."""
    return {ell: c for ell, c in _thresholds(cc).items() if ell >= 2}


def _thresholds(cc: ClassCounts) -> dict[int, float]:
    cls, _, cnt = _need(cc)
    order = np.lexsort((-cnt, cls))  # within each class, counts descending
    cls, cnt = cls[order], cnt[order]
    starts = np.flatnonzero(np.r_[True, cls[1:] != cls[:-1]])
    position = np.arange(cls.size) - np.repeat(starts, np.diff(np.r_[starts, cls.size]))
    cum_before = np.cumsum(cnt) - cnt  # records before this entry, table-wide
    within_before = cum_before - cum_before[starts][cls]
    tail = cc.class_size[cls] - within_before  # rℓ + … + rm with ℓ = position + 1
    r1 = cnt[starts][cls]
    top = distinct_l(cc)
    out: dict[int, float] = {}
    for ell in range(1, top + 1):
        sel = position == ell - 1
        out[ell] = float(np.max(r1[sel] / tail[sel]))
    return out


def recursive_cl_holds(cc: ClassCounts, c: float, ell: int) -> bool:
    """Is the table recursive (c, ℓ)-diverse?"""
    if ell < 1 or not c > 0:
        raise InvalidParameter(f"recursive (c, ℓ): need c > 0 and ℓ ≥ 1, got c={c}, ℓ={ell}")
    thresholds = _thresholds(cc)
    return ell in thresholds and c > thresholds[ell]
