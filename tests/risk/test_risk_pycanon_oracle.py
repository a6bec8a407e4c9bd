"""pyCANON (pip ``pycanon``) as an independent oracle on the same generated tables: k, distinct ℓ,
t (numeric and categorical) and δ-disclosure equal ours; pyCANON's entropy ℓ equals the floor
of ours (it floors to an integer; we report the float).

pyCANON pins exact numpy/pandas/scipy versions, so it lives in its own virtualenv under the
repository's gitignored ``.venv-oracles/`` (created once, reused afterwards) and runs in a
subprocess. The data has no missing values: pandas' groupby drops NULL keys, while we keep NULL
as its own class (that case is covered by the naive reference in test_risk_measures.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from anonymetry.risk import (
    class_counts,
    delta_disclosure,
    distinct_l,
    entropy_l,
    k_anonymity,
    t_closeness,
)

ROOT = Path(__file__).resolve().parents[2]
ORACLES = ROOT / ".venv-oracles"
PYCANON = "pycanon==1.3.6"

ORACLE_SCRIPT = r"""
import json, sys
import pandas as pd
from pycanon import anonymity as a
df = pd.read_csv(sys.argv[1], dtype={"q3": str, "cat": str})
qi = ["q1", "q2", "q3"]
out = {
    "k": int(a.k_anonymity(df, qi)),
    "l_num": int(a.l_diversity(df, qi, ["num"])),
    "l_cat": int(a.l_diversity(df, qi, ["cat"])),
    "entropy_l_num": int(a.entropy_l_diversity(df, qi, ["num"])),
    "entropy_l_cat": int(a.entropy_l_diversity(df, qi, ["cat"])),
    "t_num": float(a.t_closeness(df, qi, ["num"])),
    "t_cat": float(a.t_closeness(df, qi, ["cat"])),
    "delta_num": float(a.delta_disclosure(df, qi, ["num"])),
    "delta_cat": float(a.delta_disclosure(df, qi, ["cat"])),
}
print(json.dumps(out))
"""


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="session")
def pycanon_python() -> Path:
    """The oracle virtualenv's python, created on first use (about a minute, then cached)."""
    venv = ORACLES / "pycanon"
    marker = venv / f".installed-{PYCANON}"
    if marker.exists():
        return _python(venv)
    ORACLES.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="pycanon-", dir=ORACLES))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        done = subprocess.run(
            [str(_python(staging)), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", PYCANON],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"could not install the pyCANON oracle: {done.stderr[-2000:]}")
        (staging / f".installed-{PYCANON}").touch()
        shutil.rmtree(venv, ignore_errors=True)
        staging.rename(venv)  # venvs are relocatable enough for `python script.py` use
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _python(venv)


def _table(seed: int, n: int) -> pa.Table:
    rng = np.random.default_rng(seed)  # not-privacy: fixture data
    return pa.table({
        "q1": rng.integers(0, 4, n),
        "q2": rng.integers(0, 3, n),
        "q3": rng.choice(["a", "b"], n),
        "num": rng.integers(0, 8, n) * 10 + rng.integers(0, 2, n),  # ordered, skewed
        "cat": rng.choice(["flu", "cold", "covid", "none", "asthma"], n,
                          p=[0.4, 0.3, 0.15, 0.1, 0.05]),
    })


@pytest.mark.parametrize("seed", [7, 8])
def test_measures_equal_pycanon(seed, tmp_path, pycanon_python):
    table = _table(seed, 600)
    path = tmp_path / "data.csv"
    pacsv.write_csv(table, path)
    done = subprocess.run([str(pycanon_python), "-c", ORACLE_SCRIPT, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    oracle = json.loads(done.stdout)

    con = duckdb.connect()
    con.register("data", table)
    qi = ["q1", "q2", "q3"]
    num = class_counts(con, "data", qi, "num")
    cat = class_counts(con, "data", qi, "cat")
    assert num.ordered
    assert not cat.ordered
    assert k_anonymity(num) == oracle["k"]
    assert distinct_l(num) == oracle["l_num"]
    assert distinct_l(cat) == oracle["l_cat"]
    assert math.floor(entropy_l(num)) == oracle["entropy_l_num"]
    assert math.floor(entropy_l(cat)) == oracle["entropy_l_cat"]
    assert t_closeness(num) == pytest.approx(oracle["t_num"], abs=1e-12)
    assert t_closeness(cat) == pytest.approx(oracle["t_cat"], abs=1e-12)
    assert delta_disclosure(num) == pytest.approx(oracle["delta_num"], abs=1e-12)
    assert delta_disclosure(cat) == pytest.approx(oracle["delta_cat"], abs=1e-12)
