"""Spec → bounded plan + calibrated releases: where the whole query's privacy is reasoned about.

Privacy argument
----------------
*Neighbouring relation.* Two datasets differ in every row of one person. The engine bounds each
**unit** (a user or device pseudonym, or a declared column): at most L0 partitions, at most L∞
contributions per partition, values clamped to [lo, hi]. Pseudonyms rotate per key epoch, so a
person is up to k units when the rows span k epochs; every L1 sensitivity below is multiplied by
k (group privacy by sensitivity scaling), so the stated (ε, δ) holds **per person**. A query
restricted to one epoch (``epoch=``) has k = 1. k comes from public facts: the number of epochs
a bounded time window spans (the policy's ``key_epoch_days``); without one, the number the
source's layout shows (``Engine.count_epochs``: the store's ``epoch=<e>`` files and WAL epochs,
Parquet footer statistics), an upper bound on a person's pseudonyms in the rows.

*Releases and sensitivities* (per person, L1 over all partitions):

=================  ==================================  ============================
component          released for                        sensitivity
=================  ==================================  ============================
``units``          users; min-cohort; selection        k·L0
``rows``           count, mean, variance               k·L0·L∞
``sum``            sum                                 k·L0·L∞·max(|lo|, |hi|)
``csum``           mean, variance                      k·L0·L∞·(hi−lo)/2
``csq``            variance                            k·L0·L∞·((hi−lo)/2)²
``hist``           quantiles, histogram                k·L0·L∞
``diagnostics``    bias from bounding (3 sums)         3·k
=================  ==================================  ============================

Each component is one Laplace release (``privacy.mechanisms.LaplaceMechanism``) over the vector
of partitions; with private partition selection ``units`` is released by the threshold
mechanism (``ThresholdSelection``, (ε_s, δ)) and the other vectors cover only the selected
partitions. *Budget split*: the diagnostics get 5 % of ε (if on); the rest is split equally over
the components — a mean shares its count (``rows``) with a requested ``count`` and uses the
*centred* sum ``csum`` (values shifted to the middle of the clamp range, so its sensitivity is
half the width, not max |value|: PipelineDP's estimator); all of δ goes to selection (a query
with public partitions spends δ = 0).

*Gaussian* (``mechanism=gaussian``): each non-selection component is a Gaussian release
(``GaussianMechanism``) calibrated to the L2 sensitivity k·√L0·(per-partition bound): one
person changes ≤ k·L0 partitions, each by ≤ k·(per-partition bound), and an L1 mass A spread with
entries ≤ B has L2 ≤ √(A·B). Their shares of ε (ε_g, the same equal split) become one zCDP
budget ρ = (√(ln(1/δ_g) + ε_g) − √ln(1/δ_g))², the largest ρ whose Bun–Steinke conversion
ρ + 2√(ρ·ln(1/δ_g)) is ≤ ε_g, split equally over the Gaussian components; δ_g = δ, or δ/2 when
private selection takes the other half. The diagnostics stay Laplace (pure ε).

*Composition*: basic sequential composition of the components (the zCDP part converted once, at
δ_g) gives the query's (ε, δ); the ledger composes queries with the named accountant, which
receives the ZCdp events themselves. Minimum-cohort suppression and the ratios (mean, variance,
quantiles) are post-processing of released values.

*Public partitions from the policy*: with a policy in effect (``declared_partitions``), a key
on ``event`` or on a field the policy declares with ``values`` takes its declared values, and a
``day``/``week`` key on the window's column of a bounded window takes the window's bins; the
partitions are then the cartesian product of the keys' values (≤ ``MAX_DECLARED_PARTITIONS``,
else private selection). These values come from the policy and the query, never from the data,
so listing them costs no privacy; rows whose key is not among them are not counted.

Tests: ``tests/properties/test_sensitivity.py`` (each component moves by at most the stated
sensitivity when a person is removed, for every metric and bound), ``tests/analytics/
test_audit.py`` (empirical ε lower bound), ``tests/analytics/test_compiler.py`` (split, k).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from anonymetry.analytics.engines.base import Engine
from anonymetry.analytics.plan import Agg, BoundedPlan, Source, SourceKind
from anonymetry.analytics.spec import (
    GroupTransform,
    LinfMode,
    Mechanism,
    MetricKind,
    QuerySpec,
    TimeWindow,
)
from anonymetry.errors import InvalidParameter
from anonymetry.policy import AnalyticsDefaults, Policy
from anonymetry.privacy.accountant import Event, ZCdp, zcdp_to_epsilon
from anonymetry.privacy.budget import PrivacyLoss, to_fraction
from anonymetry.privacy.mechanisms import GaussianMechanism, LaplaceMechanism, ThresholdSelection
from anonymetry.privacy.units import ContributionBounds, PrivacyUnit

__all__ = ["DIAGNOSTICS_SHARE", "MAX_DECLARED_PARTITIONS", "CompiledQuery", "Component",
           "compile_query", "declared_partitions", "l2_sensitivities", "rho_for",
           "sensitivities"]

DIAGNOSTICS_SHARE = Fraction(1, 20)
EPOCH_COLUMN = "epoch"
MAX_DECLARED_PARTITIONS = 10_000

_COMPONENTS_OF: dict[MetricKind, tuple[str, ...]] = {
    MetricKind.COUNT: ("rows",),
    MetricKind.USERS: ("units",),
    MetricKind.SUM: ("sum",),
    MetricKind.MEAN: ("rows", "csum"),
    MetricKind.VARIANCE: ("rows", "csum", "csq"),
    MetricKind.QUANTILES: ("hist",),
    MetricKind.HISTOGRAM: ("hist",),
}
_ORDER = ("units", "rows", "sum", "csum", "csq", "hist")


@dataclass(frozen=True, slots=True)
class Component:
    """One noisy release: a vector over partitions (or the diagnostics triple)."""

    name: str
    mechanism: LaplaceMechanism | GaussianMechanism | ThresholdSelection

    @property
    def event(self) -> Event:
        return self.mechanism.event

    def describe(self) -> dict[str, Any]:
        return {"component": self.name, **self.mechanism.describe()}


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    spec: QuerySpec
    plan: BoundedPlan
    unit: PrivacyUnit
    unit_column: str
    units_per_person: int
    components: dict[str, Component]
    selection: ThresholdSelection | None
    loss: PrivacyLoss
    min_cohort: int | None
    query_id: str
    notes: tuple[str, ...] = field(default=())
    partition_mode: str = "none"
    gaussian_delta: Fraction = Fraction(0)

    @property
    def events(self) -> list[Event]:
        return [c.event for c in self.components.values()]

    @property
    def person_bounds(self) -> ContributionBounds:
        return self.plan.bounds.for_person(self.units_per_person)

    def guarantee(self) -> str:
        who = {PrivacyUnit.USER: "person (all of their devices)",
               PrivacyUnit.DEVICE: "device (a person with several devices is protected per "
                                   "device, not as a whole)",
               PrivacyUnit.COLUMN: f"value of the unit column '{self.unit_column}'"}[self.unit]
        text = f"({self.loss})-differential privacy per {who}"
        if self.units_per_person > 1:
            text += (f"; the rows span {self.units_per_person} key epochs, so one person may be "
                     f"{self.units_per_person} pseudonyms: every sensitivity was multiplied by "
                     f"{self.units_per_person} and the guarantee holds per person")
        return text


def sensitivities(bounds: ContributionBounds, k: int, clamp: Any) -> dict[str, float]:
    """L1 sensitivity per person of each component (see the module docstring)."""
    l0, linf = bounds.max_partitions, bounds.max_per_partition
    out: dict[str, float] = {"units": k * l0, "rows": k * l0 * linf, "hist": k * l0 * linf,
                             "diagnostics": 3 * k}
    if clamp is not None:
        out["sum"] = k * l0 * linf * clamp.max_abs
        out["csum"] = k * l0 * linf * clamp.radius
        out["csq"] = k * l0 * linf * clamp.radius ** 2
    return out


def l2_sensitivities(bounds: ContributionBounds, k: int, clamp: Any) -> dict[str, float]:
    """L2 sensitivity per person of each component: k·√L0·(per-partition bound); see the
    module docstring (an L1 mass A with entries ≤ B has L2 norm ≤ √(A·B))."""
    root = math.sqrt(bounds.max_partitions)
    linf = bounds.max_per_partition
    out: dict[str, float] = {"units": k * root, "rows": k * root * linf,
                             "hist": k * root * linf}
    if clamp is not None:
        out["sum"] = k * root * linf * clamp.max_abs
        out["csum"] = k * root * linf * clamp.radius
        out["csq"] = k * root * linf * clamp.radius ** 2
    return out


def rho_for(epsilon: Fraction, delta: Fraction) -> Fraction:
    """The largest ρ (slightly less, exactly representable) with ρ + 2√(ρ·ln(1/δ)) ≤ ε."""
    log = math.log(1 / float(delta))
    rho = (math.sqrt(log + float(epsilon)) - math.sqrt(log)) ** 2
    for _ in range(100):
        exact = to_fraction(rho, "rho")
        if exact > 0 and Fraction(zcdp_to_epsilon(float(exact), float(delta))) <= epsilon:
            return exact
        rho *= 1 - 1e-9
    raise InvalidParameter("epsilon: too small to calibrate Gaussian noise at this δ")


def _window_bins(window: TimeWindow, transform: GroupTransform) -> list[str]:
    """The day (or Monday-start week) labels a bounded window touches, as the engines spell
    them (``%Y-%m-%d``)."""
    assert window.since is not None
    assert window.until is not None
    first = window.since.date()
    last = (window.until - dt.timedelta(microseconds=1)).date()
    if transform is GroupTransform.WEEK:
        first -= dt.timedelta(days=first.weekday())
        step = dt.timedelta(days=7)
    else:
        step = dt.timedelta(days=1)
    out, day = [], first
    while day <= last and len(out) <= MAX_DECLARED_PARTITIONS:
        out.append(day.isoformat())
        day += step
    return out


def declared_partitions(spec: QuerySpec, policy: Policy | None
                        ) -> tuple[tuple[tuple[str, ...], ...] | None, str, str | None]:
    """Public partitions known without reading data: ``(keys or None, mode, note)``.

    Each group key must be enumerable: ``event`` (the policy's event names), a field declared
    with ``values`` (their union over events), or ``day``/``week`` of the window's column
    inside a bounded window. The product is capped at :data:`MAX_DECLARED_PARTITIONS`.
    """
    if not spec.by or policy is None or not spec.declared_partitions:
        return None, "", None
    values: list[list[str]] = []
    sources: set[str] = set()
    for key in spec.by:
        if key.transform is GroupTransform.NONE:
            if key.column == "event":
                vals = list(policy.events)
            else:
                vals = list(dict.fromkeys(
                    v for ev in policy.events.values()
                    if (f := ev.fields.get(key.column)) is not None and f.values
                    for v in f.values))
            if not vals:
                return None, "", None
            sources.add("declared in policy")
        else:
            w = spec.window
            if w is None or not w.bounded or w.column != key.column:
                return None, "", None
            vals = _window_bins(w, key.transform)
            sources.add("time window")
        values.append(vals)
    size = math.prod(len(v) for v in values)
    if size > MAX_DECLARED_PARTITIONS:
        return None, "", (f"the policy's declared values give {size:,} partitions (more than "
                          f"{MAX_DECLARED_PARTITIONS:,}): partitions are selected privately")
    mode = "public (" + " and ".join(sorted(sources)) + ")"
    return tuple(itertools.product(*values)), mode, None


def _unit(spec: QuerySpec, defaults: AnalyticsDefaults) -> tuple[PrivacyUnit, str]:
    name = spec.unit or defaults.privacy_unit
    if name == "user":
        return PrivacyUnit.USER, "user"
    if name == "device":
        return PrivacyUnit.DEVICE, "device"
    return PrivacyUnit.COLUMN, name


def _window_epochs(spec: QuerySpec, key_epoch_days: int) -> int | None:
    w = spec.window
    if w is None or not w.bounded:
        return None
    assert w.since is not None
    assert w.until is not None
    span = 86400 * key_epoch_days
    first = math.floor(w.since.timestamp() / span)
    last = math.floor((w.until.timestamp() - 1e-9) / span)
    return max(1, last - first + 1)


def compile_query(spec: QuerySpec, source: Source, engine: Engine, *,
                  policy: Policy | None = None, units_per_person: int | None = None
                  ) -> CompiledQuery:
    """Build the bounded plan and calibrate every release. Nothing is read but the schema and,
    for a store query without a time window, the number of key epochs present."""
    defaults = policy.analytics if policy else AnalyticsDefaults()
    key_epoch_days = policy.identity.key_epoch_days if policy else 30
    unit, unit_column = _unit(spec, defaults)
    schema = engine.schema(source)
    if unit_column not in schema.names:
        raise InvalidParameter(f"unit: the source has no column {unit_column!r}; name the "
                               f"privacy-unit column with --unit (columns: "
                               f"{', '.join(schema.names)})")
    bounds = ContributionBounds(
        max_partitions=spec.max_partitions or defaults.max_partitions,
        max_per_partition=spec.max_per_partition or defaults.max_per_partition)
    aggs = {Agg.UNITS, Agg.ROWS}
    needed: set[str] = set()
    for m in spec.metrics:
        needed.update(_COMPONENTS_OF[m.kind])
    for name in ("sum", "csum", "csq", "hist"):
        if name in needed:
            aggs.add(Agg(name))
    notes: list[str] = []
    public = None
    mode = "none"
    if spec.public_partitions is not None:
        public = tuple(tuple(None if v is None else str(v) for v in key)
                       for key in dict.fromkeys(spec.public_partitions))
        mode = "public"
    elif spec.by:
        public, mode, note = declared_partitions(spec, policy)
        if note:
            notes.append(note)
        if public is None:
            mode = "private"
    has_epochs = EPOCH_COLUMN in schema.names
    plan = BoundedPlan(
        source=source, unit=unit_column, keys=spec.by, filters=spec.filters,
        window=spec.window, epoch_column=EPOCH_COLUMN if has_epochs else None,
        epoch=spec.epoch, bounds=bounds, clamp=spec.clamp, value=spec.value_field,
        aggs=frozenset(aggs), bins=spec.bins, linf_mode=spec.linf_mode,
        salt=secrets.randbits(63), public_partitions=public, diagnostics=spec.diagnostics,
        bounding=not spec.unsafe_disable_bounding)
    if spec.epoch is not None and not has_epochs:
        raise InvalidParameter("epoch: the source has no 'epoch' column to restrict to")
    if spec.stable_unit and source.kind is SourceKind.STORE:
        raise InvalidParameter("stable_unit: the event store's pseudonyms rotate per key epoch, "
                               "so its units are never stable; drop --stable-unit")
    if units_per_person is not None:
        k = units_per_person
    elif not has_epochs or spec.epoch is not None or spec.stable_unit:
        k = 1
        if spec.stable_unit and has_epochs and spec.epoch is None:
            notes.append("the unit column was declared stable across key epochs "
                         "(stable_unit): one person is one unit, no epoch factor")
    else:
        k = _window_epochs(spec, key_epoch_days) or engine.count_epochs(plan)
        notes.append(f"rows span up to {k} key epoch(s); sensitivities scaled by {k}")
    private_selection = bool(spec.by) and public is None
    min_cohort = spec.min_cohort if spec.min_cohort is not None else defaults.min_cohort
    min_cohort = min_cohort or None
    if private_selection or min_cohort:
        needed.add("units")
    if private_selection and spec.delta <= 0:
        raise InvalidParameter("delta: grouping without --public-partitions needs --delta > 0 "
                               "(private partition selection); or list public partitions")
    gaussian = spec.mechanism is Mechanism.GAUSSIAN
    total = PrivacyLoss(spec.epsilon, spec.delta if private_selection or gaussian else 0)
    eps_main = total.epsilon * (1 - DIAGNOSTICS_SHARE) if spec.diagnostics else total.epsilon
    names = [n for n in _ORDER if n in needed]
    share = eps_main / len(names)
    sens = sensitivities(bounds, k, spec.clamp)
    sens2 = l2_sensitivities(bounds, k, spec.clamp)
    noisy_names = [n for n in names if not (n == "units" and private_selection)]
    delta_sel = total.delta / 2 if gaussian and private_selection else total.delta
    delta_g = total.delta - delta_sel if gaussian and private_selection else total.delta
    rho_each = Fraction(0)
    if gaussian:
        rho_each = rho_for(share * len(noisy_names), delta_g) / len(noisy_names)
    components: dict[str, Component] = {}
    selection = None
    for name in names:
        if name == "units" and private_selection:
            selection = ThresholdSelection(k * bounds.max_partitions, k * bounds.max_partitions,
                                           k, share, delta_sel if gaussian else total.delta)
            components[name] = Component(name, selection)
            continue
        integer = name in ("units", "rows") or (name == "hist"
                                                 and spec.linf_mode is LinfMode.SAMPLE)
        if gaussian:
            components[name] = Component(name, GaussianMechanism(sens2[name], rho_each, integer))
        else:
            components[name] = Component(name, LaplaceMechanism(sens[name], share, integer))
    if spec.diagnostics:
        components["diagnostics"] = Component(
            "diagnostics", LaplaceMechanism(sens["diagnostics"],
                                            total.epsilon * DIAGNOSTICS_SHARE, False))
    spent = PrivacyLoss(0, 0)
    rho_total = Fraction(0)
    for c in components.values():
        ev = c.event
        if isinstance(ev, ZCdp):
            rho_total += ev.rho
        else:
            spent = spent + PrivacyLoss(ev.epsilon, getattr(ev, "delta", 0))
    if rho_total:
        eps_g = Fraction(zcdp_to_epsilon(float(rho_total), float(delta_g)))
        spent = spent + PrivacyLoss(eps_g, delta_g)
    if not spent <= total:  # release re-checks this too
        raise InvalidParameter(f"internal budget split exceeds the request: {spent} > {total}")
    query_id = spec.query_id or secrets.token_hex(16)
    return CompiledQuery(spec=dataclasses.replace(spec, query_id=query_id), plan=plan,
                         unit=unit, unit_column=unit_column, units_per_person=k,
                         components=components, selection=selection, loss=spent,
                         min_cohort=min_cohort, query_id=query_id, notes=tuple(notes),
                         partition_mode=mode if spec.by else "none",
                         gaussian_delta=delta_g if gaussian else Fraction(0))
