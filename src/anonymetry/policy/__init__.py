"""The typed policy (bottom layer; imports nothing of anonymetry's but ``errors``).

- :mod:`~anonymetry.policy.model`: frozen types — ``Policy``, ``EventSpec``, ``FieldSpec``,
  ``ConsentLevel``, ``Sensitivity``, ``TimeGranularity`` and the policy sections.
- :mod:`~anonymetry.policy.loader`: ``load_policy`` / ``parse_policy``, which report every
  problem with its key path and line.
- ``default_policy()``: the embedded example policy (``examples/policy.yaml``) used by the demo.
"""

from __future__ import annotations

from importlib import resources

from anonymetry.policy.loader import load_policy, parse_policy
from anonymetry.policy.model import (
    AnalyticsDefaults,
    BudgetPolicy,
    ConsentLevel,
    ConsentPolicy,
    EventSpec,
    FieldSpec,
    FieldType,
    Identity,
    Policy,
    ReleasePolicy,
    RetentionPolicy,
    Sensitivity,
    TimeGranularity,
    TimePolicy,
)

__all__ = [
    "AnalyticsDefaults",
    "BudgetPolicy",
    "ConsentLevel",
    "ConsentPolicy",
    "EventSpec",
    "FieldSpec",
    "FieldType",
    "Identity",
    "Policy",
    "ReleasePolicy",
    "RetentionPolicy",
    "Sensitivity",
    "TimeGranularity",
    "TimePolicy",
    "default_policy",
    "default_policy_text",
    "load_policy",
    "parse_policy",
]


def default_policy_text() -> str:
    """The YAML of the embedded default policy (a copy of ``examples/policy.yaml``)."""
    return resources.files("anonymetry.data").joinpath("policy.yaml").read_text("utf-8")


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), source="<embedded default policy>")
