"""Every indicator and rule result of the nightly pipeline equals an
independent computation of the definitions (tests/independent/: plain
DuckDB SQL written from the docs, importing nothing from the package), on a
generated data set with every defect kind injected — for every indicator,
region level, period type and month."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal

import pytest

from pipelines import nightly
from tests.independent import oracle
from transforms.indicators.catalog import CODES
from warehouse.duckdb_store import connect

MONTHS = "2023-01..2023-12"
SIX = Decimal("0.000001")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("gen")
    subprocess.run([sys.executable, "-m", "datagen", "--out", str(data), "--seed", "11",
                    "--persons", "4000"], check=True, capture_output=True)
    as_of_text = (data / "as_of.txt").read_text().strip()
    wh = tmp_path_factory.mktemp("wh") / "w.duckdb"
    nightly.run(["--input", str(data), "--warehouse", f"duckdb:///{wh}", "--as-of", as_of_text,
                 "--months", MONTHS, "--no_alerts"])
    as_of = dt.datetime.fromisoformat(as_of_text)
    months = [f"2023-{m:02d}" for m in range(1, 13)]
    expected = oracle.compute(data, data / "reference", as_of, months)
    con = connect(str(wh), read_only=True)
    try:
        got_ind = con.sql("SELECT indicator_code, region_code, region_level, period_type, "
                          "period_start, period_end, numerator, denominator FROM indicator_values "
                          "WHERE pipeline = 'nightly'").fetchall()
        got_rules = con.sql("SELECT rule_id, region_code, region_level, period_type, period_start, "
                            "period_end, checked, failed FROM quality_rule_results").fetchall()
    finally:
        con.close()
    return expected, got_ind, got_rules


def _num(x):
    if x is None or (isinstance(x, float) and x != x):
        return None
    return Decimal(str(x)).quantize(SIX)


def _key(row):
    return tuple(str(v) for v in row)


def test_every_indicator_equals_the_independent_computation(run):
    expected, got, _ = run
    exp = {
        _key((r.indicator_code, r.region_code, r.region_level, r.period_type, r.period_start,
              r.period_end)): (_num(r.numerator), _num(r.denominator))
        for r in expected["indicators"].itertuples()
    }
    mine = {_key(r[:6]): (_num(r[6]), _num(r[7])) for r in got}
    assert set(mine) == set(exp), "the pipeline writes exactly the oracle's rows"
    wrong = {k: (mine[k], exp[k]) for k in exp if mine[k] != exp[k]}
    by_code: dict[str, int] = {}
    for k in wrong:
        by_code[k[0]] = by_code.get(k[0], 0) + 1
    assert not wrong, f"{len(wrong)} rows differ, by indicator {by_code}; e.g. {list(wrong.items())[:5]}"
    # The data set exercises every indicator: a non-zero denominator in some county.
    for code in CODES:
        assert any(k[0] == code and k[2] == "county" and v[1] for k, v in exp.items()), code


def test_every_rule_result_equals_the_independent_computation(run):
    expected, _, got = run
    exp = {
        _key((r.rule_id, r.region_code, r.region_level, r.period_type, r.period_start,
              r.period_end)): (int(r.checked), int(r.failed))
        for r in expected["rules"].itertuples()
    }
    mine = {_key(r[:6]): (r[6], r[7]) for r in got}
    assert set(exp) <= set(mine)
    wrong = {k: (mine[k], exp[k]) for k in exp if mine[k] != exp[k]}
    assert not wrong, f"{len(wrong)} rows differ; e.g. {list(wrong.items())[:5]}"
    assert all(any(k[0] == rule and v[1] for k, v in exp.items()) for rule in {k[0] for k in exp})
