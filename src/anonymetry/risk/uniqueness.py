"""Sample uniqueness and re-identification risk under three attacker models (El Emam & Dankar,
"Protecting privacy using k-anonymity", JAMIA 2008; the definitions ARX uses).

Per record the risk is ``1 / F`` where ``F`` is the size of its class in the population the
attacker matches against:

- **prosecutor**: the attacker knows the target is in the release, so ``F = n_c`` (the class
  size in the release). ``max = 1/k``; ``average = #classes / #records`` (ARX's average risk).
- **journalist**: the attacker does not know whether the target is in the release and matches
  against the population. With a population size ``N`` (``--population``), ``F_c`` is the
  expected population class size under uniform sampling, ``n_c / f`` with ``f = n / N``;
  without one, the release is taken as the population (``F_c = n_c``, equal to prosecutor).
- **marketer**: the expected share of records re-identified when the attacker links all of
  them: ``(1/n) Σ_c n_c / F_c`` (= ``#classes / n`` when ``F_c = n_c``).

**Sample uniqueness** is the share of records alone in their class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from anonymetry.errors import InvalidParameter
from anonymetry.risk._engine import ClassCounts

__all__ = ["ReidentificationRisk", "reidentification_risk", "sample_uniqueness"]


def sample_uniqueness(cc: ClassCounts) -> float:
    """Share of records whose class has size 1."""
    return float(np.count_nonzero(cc.class_size == 1) / cc.n_records)


@dataclass(frozen=True, slots=True)
class ReidentificationRisk:
    prosecutor_max: float
    prosecutor_average: float
    journalist_max: float
    journalist_average: float
    marketer: float
    population: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prosecutor_risk": {"max": self.prosecutor_max, "average": self.prosecutor_average},
            "journalist_risk": {
                "max": self.journalist_max,
                "average": self.journalist_average,
                "population": self.population,
            },
            "marketer_risk": self.marketer,
        }


def population_class_sizes(cc: ClassCounts, population: int | None) -> np.ndarray:
    """``F_c``: expected population class sizes (``n_c / f``), or ``n_c`` without a population."""
    sizes = cc.class_size.astype(float)
    if population is None:
        return sizes
    if population < cc.n_records:
        raise InvalidParameter(
            f"--population: {population} is smaller than the table's {cc.n_records} records; "
            "give the size of the population the table was drawn from"
        )
    return np.maximum(sizes, sizes * population / cc.n_records)


def reidentification_risk(cc: ClassCounts, population: int | None = None) -> ReidentificationRisk:
    """Prosecutor, journalist and marketer risk of the table."""
    n = cc.n_records
    sizes = cc.class_size.astype(float)
    big_f = population_class_sizes(cc, population)
    return ReidentificationRisk(
        prosecutor_max=float(1.0 / sizes.min()),
        prosecutor_average=float(cc.n_classes / n),
        journalist_max=float(1.0 / big_f.min()),
        journalist_average=float(np.sum(sizes / big_f) / n),
        marketer=float(np.sum(sizes / big_f) / n),
        population=population,
    )
