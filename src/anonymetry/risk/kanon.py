"""k-anonymity: the size of the smallest equivalence class, and the class-size histogram.

A table is k-anonymous for the QIs when every combination of QI values present is shared by at
least k records (Sweeney 2002). NULL QI values form classes of their own (see
:mod:`anonymetry.risk`).
"""

from __future__ import annotations

import numpy as np

from anonymetry.risk._engine import ClassCounts

__all__ = ["class_size_histogram", "k_anonymity"]


def k_anonymity(cc: ClassCounts) -> int:
    """The smallest class size."""
    return int(cc.class_size.min())


def class_size_histogram(cc: ClassCounts) -> dict[int, int]:
    """``{class size: number of classes of that size}``, ascending by size."""
    sizes, counts = np.unique(cc.class_size, return_counts=True)
    return {int(s): int(c) for s, c in zip(sizes, counts, strict=True)}
