"""t-closeness and δ-disclosure: how far a class's sensitive distribution is from the table's.

**t-closeness** (Li, Li & Venkatasubramanian, "t-Closeness: Privacy Beyond k-Anonymity and
ℓ-Diversity", ICDE 2007): ``t`` is the largest Earth Mover's Distance between a class's
distribution ``Q`` and the whole table's ``P`` over the ``m`` sensitive values present in the
table:

- *ordered distance* (numbers, dates, times; values ranked ascending, NULL last):
  ``EMD = 1/(m−1) · Σ_i |Σ_{j≤i} (q_j − p_j)|``;
- *equal distance* (everything else): ``EMD = ½ · Σ_i |q_i − p_i|``.

Both run over the (class, value) entries only: the cumulative difference is a step function
between the values a class holds, and each step's sum of ``|Q − P_i|`` over the skipped ranks
is found with a binary search in the table's cumulative ``P`` and its prefix sums. With
``m = 1`` every class equals the table and ``t = 0``.

**δ-disclosure** (Brickell & Shmatikov, KDD 2008): ``δ = max over classes and present values of
|ln(q/p)|`` (values absent from a class are skipped, as in pyCANON).
"""

from __future__ import annotations

import numpy as np

from anonymetry.errors import InvalidParameter
from anonymetry.risk._engine import ClassCounts

__all__ = ["class_emd", "delta_disclosure", "t_closeness"]


def _parts(cc: ClassCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if cc.entry_class is None or cc.entry_code is None or cc.entry_count is None:
        raise InvalidParameter("t-closeness and δ-disclosure need a sensitive attribute")
    cls, code, cnt = cc.entry_class, cc.entry_code, cc.entry_count
    p = np.bincount(code, weights=cnt, minlength=cc.n_values) / cc.n_records
    q = cnt / cc.class_size[cls]
    return cls, code, cnt, p, q


def class_emd(cc: ClassCounts) -> np.ndarray:
    """EMD of each class to the table (ordered or equal distance per ``cc.ordered``)."""
    cls, code, _, p, q = _parts(cc)
    m = cc.n_values
    if m <= 1:
        return np.zeros(cc.n_classes)
    if not cc.ordered:
        per_entry = np.abs(q - p[code]) - p[code]
        return 0.5 * (np.bincount(cls, weights=per_entry, minlength=cc.n_classes) + 1.0)
    big_p = np.cumsum(p)  # P_i, cumulative table distribution at rank i
    big_p[-1] = 1.0
    sp = np.r_[0.0, np.cumsum(big_p)]  # sp[i] = Σ_{j<i} P_j
    # Q is 0 before a class's first value, then constant between its values.
    q_cum = np.cumsum(q)
    first = np.r_[True, cls[1:] != cls[:-1]]
    starts = np.flatnonzero(first)
    q_cum -= np.repeat(q_cum[starts] - q[starts], np.diff(np.r_[starts, cls.size]))
    last = np.r_[cls[1:] != cls[:-1], True]
    lo = code
    hi = np.where(last, m, np.r_[code[1:], m])  # this step covers ranks lo … hi-1
    split = np.clip(np.searchsorted(big_p, q_cum, side="left"), lo, hi)
    step = (q_cum * (split - lo) - (sp[split] - sp[lo])
            + (sp[hi] - sp[split]) - q_cum * (hi - split))
    head = np.zeros(cc.n_classes)
    head[cls[first]] = sp[code[first]]  # ranks before the first value: Σ P_i (Q = 0)
    total = np.bincount(cls, weights=step, minlength=cc.n_classes) + head
    return np.maximum(total, 0.0) / (m - 1)


def t_closeness(cc: ClassCounts) -> float:
    """The largest class EMD: the table is t-close for every t ≥ this value."""
    return float(class_emd(cc).max())


def delta_disclosure(cc: ClassCounts) -> float:
    """The largest ``|ln(q/p)|`` over classes and the values they hold."""
    _, code, _, p, q = _parts(cc)
    return float(np.max(np.abs(np.log(q / p[code]))))
