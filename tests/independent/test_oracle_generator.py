"""The oracle on the data generator's output.

Checks the oracle against the generator's own ledger (truth.json: records read and
accepted per stream, the kept copy of each conflicting duplicate, the keys failing each
rule) and checks structural invariants of the output (additivity over months and
regions, stocks, bounds).
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.independent import oracle

ROOT = Path(__file__).resolve().parents[2]
FLOW = ["I08", "I10", "I13", "I14", "I17", "I21", "I22", "I24", "I25", "I26",
        "R01", "R02", "R03", "R04", "R05", "S02", "S03", "S04"]
COUNTS = [c for c in FLOW if c not in oracle.MONEY_INDICATORS] + ["I07", "I19"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "datagen", "--out", str(out), "--seed", "3", "--persons", "1500",
         "--defect-rate", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    as_of = dt.datetime.fromisoformat((out / "as_of.txt").read_text().strip())
    year = as_of.astimezone(dt.timezone(dt.timedelta(hours=8))).year
    months = [f"{year}-{m:02d}" for m in range(1, 13)]
    con = duckdb.connect()
    result = oracle.compute(out, out / "reference", as_of, months, connection=con)
    return out, truth, con, result, year


def test_reading_matches_the_generators_ledger(generated):
    out, truth, con, _, _ = generated
    for stream in oracle.STREAMS:
        ledger = truth.get("streams", {}).get(stream)
        if not ledger:
            continue
        read, accepted = con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM raw_{stream}").fetchall()[0]
        assert read == ledger["readable_records"], stream
        assert accepted == ledger["accepted"], stream
    for stream, info in truth.get("conflicting_duplicates", {}).items():
        for copy in info.get("copies", []):
            src, idx = con.execute(
                f"SELECT _src, _rec_idx FROM raw_{stream} WHERE event_id = ? "
                "ORDER BY _file_ord, _rec_idx LIMIT 1", [copy["event_id"]]).fetchall()[0]
            assert (Path(src).relative_to(out).as_posix(), idx) == (
                copy["kept"]["path"], copy["kept"]["index"])


def test_rule_verdicts_match_the_generators_defects(generated):
    _, truth, con, _, year = generated
    tables = {
        "enrolment": ("[psn_no, insutype]",
                      f"(SELECT * FROM enr_verdicts WHERE period_end = DATE '{year}-12-31')"),
        "settlement": ("setl_id", "setl_verdicts"),
        "filing": ("case_id", "filing_verdicts"),
    }
    for rule_id, info in truth.get("rules", {}).items():
        key, table = tables[info["stream"]]
        mine = sorted(json.dumps(r[0]) for r in
                      con.execute(f"SELECT {key} FROM {table} WHERE {rule_id}").fetchall())
        assert mine == sorted(json.dumps(k) for k in info["keys"]), rule_id


def test_structural_invariants(generated):
    *_, result, year = generated
    ind = result["indicators"]
    assert len(ind) == 25 * 28 * 24
    by = {(r.indicator_code, r.region_code, r.period_type, r.period_end): r
          for r in ind.itertuples()}
    counties = sorted(set(ind[ind.region_level == "county"].region_code))
    ends = sorted(set(ind.period_end))
    # flow indicators: YTD = sum of the months
    for code in FLOW:
        for region in ("640000", "640100", "640104"):
            for i, end in enumerate(ends):
                ytd = by[(code, region, "YTD", end)]
                months = [by[(code, region, "MONTH", e)] for e in ends[: i + 1]]
                assert ytd.numerator == sum(m.numerator for m in months), (code, region, end)
                assert ytd.denominator == sum(m.denominator for m in months), (code, region, end)
    # stocks and catalogue: YTD = MONTH
    for code in ("I07", "I09", "I04", "S01", "S05"):
        for end in ends:
            m, y = by[(code, "640000", "MONTH", end)], by[(code, "640000", "YTD", end)]
            assert (m.numerator, m.denominator) == (y.numerator, y.denominator), code
    # counts: 0 <= numerator <= denominator; the province holds at least its counties
    for code in COUNTS:
        rows = ind[ind.indicator_code == code]
        assert all(0 <= n <= d for n, d in zip(rows.numerator, rows.denominator)), code
        for end in ends:
            total = sum(by[(code, c, "MONTH", end)].denominator for c in counties)
            assert by[(code, "640000", "MONTH", end)].denominator >= total, code
    assert all(by[("I19", "640000", t, e)].denominator == 22 for t in ("MONTH", "YTD")
               for e in ends)
    # C01: components add over the months
    dec = ends[-1]
    c_ytd = by[("C01", "640000", "YTD", dec)].components
    c_months = [by[("C01", "640000", "MONTH", e)].components for e in ends]
    for k in ("cur_sum", "cur_cnt", "prev_sum", "prev_cnt"):
        assert c_ytd[k] == sum((c[k] for c in c_months), Decimal(0) if "sum" in k else 0)
    assert all(isinstance(v, Decimal) for v in ind[ind.indicator_code == "R01"].numerator)
