"""Re-identification risk of tables and traces, remedies, and release gates.

Package map (one module per concept):

- :mod:`~anonymetry.risk._engine` — the engine boundary: one ``GROUP BY`` over the QIs and the
  sensitive attribute in DuckDB → :class:`ClassCounts` (a Spark executor returns the same).
- :mod:`~anonymetry.risk.kanon` — k-anonymity and the class-size histogram.
- :mod:`~anonymetry.risk.diversity` — distinct, entropy and recursive (c, ℓ)-diversity.
- :mod:`~anonymetry.risk.closeness` — t-closeness (EMD, ordered/equal distance), δ-disclosure.
- :mod:`~anonymetry.risk.uniqueness` — sample uniqueness; prosecutor, journalist, marketer risk.
- :mod:`~anonymetry.risk.population` — population uniqueness: Pitman, Zayatz, SNB, Dankar's
  rule (as in ARX).
- :mod:`~anonymetry.risk.combinations` — which QIs to drop or generalize; riskiest QI subsets.
- :mod:`~anonymetry.risk.table` — :func:`assess_table` → :class:`TableRisk` (all of the above),
  per-record risk.
- :mod:`~anonymetry.risk.source` — open a file, a DuckDB table or the event store; QIs from
  the policy's sensitivity tags.
- :mod:`~anonymetry.risk.gate` — policy ``release`` thresholds → :class:`Verdict`.
- :mod:`~anonymetry.risk.traces` — trace uniqueness (share of users singled out by p points).
- :mod:`~anonymetry.risk.linkage` — simulated linkage attack with an auxiliary table.
- :mod:`~anonymetry.risk.hierarchy`, :mod:`~anonymetry.risk.generalize` — generalization
  hierarchies and anonymization to a target k/ℓ/t with the least information loss.

Missing values: a NULL quasi-identifier is a value of its own (rows missing the same QIs form
a class together, as SQL ``GROUP BY`` does); a NULL sensitive value is a value of its own
("missing"), ranked after the largest value for the ordered distance of t-closeness.
"""

from anonymetry.risk._engine import ClassCounts, class_counts
from anonymetry.risk.closeness import delta_disclosure, t_closeness
from anonymetry.risk.diversity import distinct_l, entropy_l, recursive_cl, recursive_cl_holds
from anonymetry.risk.gate import Check, Verdict, evaluate
from anonymetry.risk.kanon import class_size_histogram, k_anonymity
from anonymetry.risk.population import PopulationUniqueness, population_uniqueness
from anonymetry.risk.source import Source, choose_columns, open_source
from anonymetry.risk.table import TableRisk, assess_counts, assess_table, write_per_record
from anonymetry.risk.uniqueness import (
    ReidentificationRisk,
    reidentification_risk,
    sample_uniqueness,
)

__all__ = [
    "Check",
    "ClassCounts",
    "PopulationUniqueness",
    "ReidentificationRisk",
    "Source",
    "TableRisk",
    "Verdict",
    "assess_counts",
    "assess_table",
    "choose_columns",
    "class_counts",
    "class_size_histogram",
    "delta_disclosure",
    "distinct_l",
    "entropy_l",
    "evaluate",
    "k_anonymity",
    "open_source",
    "population_uniqueness",
    "recursive_cl",
    "recursive_cl_holds",
    "reidentification_risk",
    "sample_uniqueness",
    "t_closeness",
    "write_per_record",
]
