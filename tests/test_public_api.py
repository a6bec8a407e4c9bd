"""Each package's public names are deliberate: this pins them, so adding or removing one is a
visible decision (and every listed name really exists)."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "anonymetry.errors": {
        "AnonymetryError", "BudgetExhausted", "ConsentDenied", "InternalError",
        "InvalidParameter", "KeyUnavailable", "Overloaded", "PolicyError", "PolicyProblem",
        "ReleaseBlocked", "SchemaViolation", "TamperDetected"},
    "anonymetry.policy": {
        "AnalyticsDefaults", "BudgetPolicy", "ConsentLevel", "ConsentPolicy", "EventSpec",
        "FieldSpec", "FieldType", "Identity", "Policy", "ReleasePolicy", "RetentionPolicy",
        "Sensitivity", "TimeGranularity", "TimePolicy", "default_policy", "default_policy_text",
        "load_policy", "parse_policy"},
    "anonymetry.privacy": {
        "EpochKeys", "Keyring", "LocalKeyring", "Pseudonymizer", "Sealer", "coarsen",
        "epoch_of", "epoch_start", "keyed_digest"},
    "anonymetry.ingest": {"EventStore", "Pipeline", "StoredEvent", "open_reader", "store_stats"},
    "anonymetry.governance": {"TokenInfo", "TokenStore"},
    "anonymetry.demo": {"DemoConfig", "DemoSummary", "run_demo"},
    "anonymetry.service": {"CollectorApp", "ServiceConfig", "openapi_document"},
}

PACKAGES = ("errors", "policy", "privacy", "ingest", "client", "analytics", "risk",
            "governance", "report", "service", "demo")


@pytest.mark.parametrize("module", sorted(PINNED))
def test_public_names_are_pinned(module: str) -> None:
    assert set(importlib.import_module(module).__all__) == PINNED[module]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_exists_and_the_package_is_mapped(package: str) -> None:
    module = importlib.import_module(f"anonymetry.{package}")
    assert module.__doc__, "package map docstring"
    assert len(module.__doc__.splitlines()) > 2, "package map docstring"
    for name in module.__all__:
        assert getattr(module, name) is not None, name
