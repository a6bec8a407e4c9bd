"""The public names of anonymetry.risk are pinned: adding or removing one is a reviewed change."""

import anonymetry.risk as risk

TABLE_RISK_API = {
    "Check", "ClassCounts", "PopulationUniqueness", "ReidentificationRisk", "Source",
    "TableRisk", "Verdict", "assess_counts", "assess_table", "choose_columns", "class_counts",
    "class_size_histogram", "delta_disclosure", "distinct_l", "entropy_l", "evaluate",
    "k_anonymity", "open_source", "population_uniqueness", "recursive_cl", "recursive_cl_holds",
    "reidentification_risk", "sample_uniqueness", "t_closeness", "write_per_record",
}


def test_table_risk_names_are_exported():
    assert set(risk.__all__) >= TABLE_RISK_API
    for name in risk.__all__:
        assert hasattr(risk, name), name
