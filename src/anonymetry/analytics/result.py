"""A released result that explains itself: every number with its guarantee, noise and bounds.

``Result.to_dict()`` is the JSON contract (``anonymetry query --json``): ``epsilon``, ``delta``,
``unit``, ``bounds``, ``rows`` (each ``by``, ``metric``, ``value``, ``noise_scale``, ``ci95``,
``mechanism``, ``noise_components``; what ``noise_scale`` means per metric: :class:`ResultRow`),
``suppressed_partitions``, ``budget`` (``spent``, ``remaining``; when a ledger is used),
``bounding_bias`` (share of rows dropped by L0/L∞ and of values clamped — reported apart from
noise), ``budget_split``, ``partition_selection``, ``guarantee``. Reports render these; they
never recompute them. ``explain()`` is the same in prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Result", "ResultRow"]


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One released number.

    ``noise_scale`` is always in the units of ``value`` and is the scale parameter of the
    noise's family (Laplace *b*, std √2·b; Gaussian σ):

    - ``count``, ``users``, ``sum``, a ``histogram`` bin: the scale of the noise added to that
      very value (one OpenDP draw);
    - ``mean``: mid + S/N from a noisy centred sum S and a noisy count N; its noise is not one
      draw, so ``noise_scale`` is the delta-method scale √(b_S² + (S/N)²·b_N²)/N at the released
      (S, N) — the b (or σ) of a single draw with the same standard deviation;
    - ``variance``: the same delta method for Q/N − (S/N)²;
    - quantiles: the scale of the noise on each histogram bin *count* (the quantile is read off
      the noisy cumulative histogram; its uncertainty in value units is ``ci95``).

    ``noise_components`` names each noisy component the value is computed from and its scale
    (e.g. ``{"csum": b_S, "rows": b_N}`` for a mean). ``ci95`` covers the noise only: exact
    for a single draw (OpenDP's accuracy at α = 0.05), conservative for ratios (α split over
    the components, interval arithmetic), for quantiles from the histogram's simultaneous
    bands; never the bias from bounding (see ``bounding_bias``).
    """

    by: dict[str, Any]
    metric: str
    value: float
    noise_scale: float
    ci95: tuple[float, float]
    mechanism: str = ""
    noise_components: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"by": dict(self.by), "metric": self.metric, "value": self.value,
               "noise_scale": self.noise_scale, "ci95": [self.ci95[0], self.ci95[1]],
               "mechanism": self.mechanism}
        if self.noise_components is not None:
            out["noise_components"] = dict(self.noise_components)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRow:
        return cls(d["by"], d["metric"], d["value"], d["noise_scale"],
                   (d["ci95"][0], d["ci95"][1]), d.get("mechanism", ""),
                   d.get("noise_components"))


@dataclass(frozen=True, slots=True)
class Result:
    query_id: str
    dataset: str
    epsilon: float
    delta: float
    unit: dict[str, Any]
    bounds: dict[str, Any]
    rows: tuple[ResultRow, ...]
    suppressed_partitions: dict[str, Any]
    partition_selection: dict[str, Any]
    budget_split: tuple[dict[str, Any], ...]
    guarantee: str
    bounding_bias: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    engine: str = "duckdb"
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query_id": self.query_id,
            "dataset": self.dataset,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "unit": dict(self.unit),
            "bounds": dict(self.bounds),
            "rows": [r.to_dict() for r in self.rows],
            "suppressed_partitions": dict(self.suppressed_partitions),
            "partition_selection": dict(self.partition_selection),
            "budget_split": [dict(s) for s in self.budget_split],
            "guarantee": self.guarantee,
            "bounding_bias": self.bounding_bias,
            "engine": self.engine,
            "notes": list(self.notes),
        }
        if self.budget is not None:
            out["budget"] = self.budget
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        return cls(
            query_id=d["query_id"], dataset=d["dataset"], epsilon=d["epsilon"],
            delta=d["delta"], unit=d["unit"], bounds=d["bounds"],
            rows=tuple(ResultRow.from_dict(r) for r in d["rows"]),
            suppressed_partitions=d["suppressed_partitions"],
            partition_selection=d["partition_selection"],
            budget_split=tuple(d["budget_split"]), guarantee=d["guarantee"],
            bounding_bias=d.get("bounding_bias"), budget=d.get("budget"),
            engine=d.get("engine", ""), notes=tuple(d.get("notes", ())))

    def with_budget(self, budget: dict[str, Any] | None) -> Result:
        return Result(**{**{f: getattr(self, f) for f in self.__slots__}, "budget": budget})

    def explain(self) -> str:
        """The guarantee, the mechanisms, the bounds and the caveats, in prose."""
        lines = [f"Query {self.query_id} on {self.dataset}: {self.guarantee}."]
        b = self.bounds
        clamp = b.get("clamp")
        lines.append(
            f"Each {self.unit.get('kind', 'unit')} kept at most {b['max_partitions']} partition(s) "
            f"and {b['max_per_partition']} contribution(s) per partition"
            + (f"; values clamped to [{clamp['lo']:g}, {clamp['hi']:g}]" if clamp else "") + ".")
        for s in self.budget_split:
            extra = f", δ={s['delta']:.3g}" if s.get("delta") else ""
            loss = f"ρ={s['rho']:.4g}" if "rho" in s and "epsilon" not in s else \
                f"ε={s['epsilon']:.4g}{extra}"
            scale = f" scale {s['scale']:.4g}" if "scale" in s else ""
            lines.append(f"  {s['component']}: {s['mechanism']}{scale} ({loss})")
        ps = self.partition_selection
        if ps.get("mode") == "private":
            lines.append(f"Partitions were selected privately: a partition is shown only if its "
                         f"noisy count of distinct units reached {ps['threshold']}; so no group "
                         f"appears because of one person (except with probability ≤ δ).")
        elif str(ps.get("mode", "")).startswith("public"):
            origin = ps["mode"][len("public"):].strip(" ()") or "given by the analyst"
            lines.append(f"Partitions come from a public list of {ps['listed']} ({origin}); "
                         "missing ones appear with noise.")
        sup = self.suppressed_partitions
        if sup.get("min_cohort"):
            lines.append(f"{sup['by_min_cohort']} released partition(s) were suppressed for a "
                         f"noisy cohort below {sup['min_cohort']}.")
        bias = self.bounding_bias
        if bias:
            def pct(share: float, ci: list[float] | None) -> str:
                text = f"{100 * share:.1f}%"
                if ci:
                    text += f" (95% CI {100 * ci[0]:.0f}–{100 * ci[1]:.0f}%)"
                return text

            lines.append(
                f"Bias from bounding (not noise; DP estimate): on average "
                f"{pct(bias['rows_dropped_share'], bias.get('rows_dropped_ci95'))} of a unit's "
                f"rows were dropped by L0/L∞ and "
                f"{pct(bias['values_clamped_share'], bias.get('values_clamped_ci95'))} of kept "
                f"values clamped.")
            if bias.get("informative") is False:
                lines.append("  Too few units for the bias estimate at its ε share "
                             f"(ε={bias['epsilon']:.3g}): read it from its interval only; "
                             "`anonymetry suggest-bounds` measures the data's shape instead.")
        if self.budget:
            sp, rem = self.budget["spent"], self.budget["remaining"]
            acc = self.budget.get("accountant", "")
            lines.append(f"Budget ({acc}): spent ε={sp['epsilon']:.4g}"
                         f", δ={sp['delta']:.3g}; remaining ε={rem['epsilon']:.4g}, "
                         f"δ={rem['delta']:.3g}.")
        lines.extend(self.notes)
        lines.append("Each ci95 covers the noise only (bounding bias is separate).")
        return "\n".join(lines)
