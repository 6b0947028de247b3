"""Hand-made cases for the indicator definitions that are easiest to get
wrong (issue: every indicator, acceptance "hand-made cases"), run through
the real nightly pipeline.  Every expected figure is worked out in the
comments."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from pipelines import nightly
from tests.builders import (
    D,
    case,
    contribution,
    copy_reference,
    enrolment,
    settlement,
    settlement_list,
    write_avro,
)
from warehouse.duckdb_store import connect

SH = dt.timezone(dt.timedelta(hours=8))
AS_OF = "2023-10-20T23:59:59+08:00"


def sh(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH).astimezone(dt.UTC)


MATTERS = """matter_code,name,online_capable,statutory_working_days,promised_working_days,region_code
ENROL,参保登记,true,5,0,
OFFSITE_FILING,异地就医备案,true,5,0,
MANUAL_REIMB,零星报销,false,30,10,
TRANSFER,关系转移接续,false,45,15,
CHRONIC_DISEASE,门诊慢特病认定,false,20,10,
MATERNITY_ALLOWANCE,生育津贴,false,20,10,
MANUAL_REIMB,零星报销（兴庆区）,true,30,5,640104
TRANSFER,关系转移接续（银川市）,true,45,0,640100
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    ref = copy_reference(root)
    (ref / "matters.csv").write_text(MATTERS, encoding="utf-8")

    cases = [
        # Thursday 28 Sep 2023, 1 working day: the deadline is the 调休 Saturday 7 Oct.
        case("c1", sh(2023, 9, 28, 10), sh(2023, 10, 7, 15), promised_working_days=1, rating=5),
        case("c2", sh(2023, 9, 28, 10), sh(2023, 10, 8, 9), promised_working_days=1, rating=3,
             channel="WINDOW"),  # Sunday 8 Oct is a working day too, but one too late
        case("c3", sh(2023, 10, 9, 10), None, promised_working_days=3),  # open, due 12 Oct: overdue
        case("c4", sh(2023, 10, 18, 10), None, promised_working_days=5),  # open, due 25 Oct: not yet
        case("c5", sh(2023, 10, 10, 10), sh(2023, 10, 11, 10), status="REJECTED"),  # counts nowhere
    ]
    contributions = [
        contribution(sh(2023, 10, 10, 12), sh(2023, 10, 11, 23, 59)),  # T+1: on time
        contribution(sh(2023, 10, 10, 12), sh(2023, 10, 12, 0, 1)),  # T+2: late
    ]
    sa = settlement("sA", sh(2023, 9, 1, 10))
    sb = settlement("sB", sh(2023, 9, 1, 10))
    sc = settlement("sC", sh(2023, 10, 15, 10))  # 30 days not over at as_of, no list: left out
    sd = settlement("sD", sh(2023, 10, 16, 10))  # not over either, but its list is in: counts
    lists = [
        settlement_list("sA", sa["setl_time"] + dt.timedelta(days=30)),  # day 30: on time
        settlement_list("sB", sb["setl_time"] + dt.timedelta(days=30, seconds=1)),  # past day 30
        settlement_list("sD", sh(2023, 10, 17, 9)),
    ]
    settlements = [
        sa, sb, sc, sd,
        # I19: a patient insured in 陕西 with a direct chronic-outpatient settlement in 西夏区.
        settlement("x1", sh(2023, 10, 5, 10), insu_admdvs="610102", fix_blng_admdvs="640105",
                   med_type="1401", dscg_maindiag_code=None, dise_codg="M03900", insutype="390"),
        # I22: locally insured (永宁县), treated in 北京 inpatient, one direct and one manual.
        settlement("y1", sh(2023, 10, 6, 10), insu_admdvs="640121", fix_blng_admdvs="110105",
                   fixmedins_code="H11010500001"),
        settlement("y2", sh(2023, 10, 7, 10), insu_admdvs="640121", fix_blng_admdvs="110105",
                   fixmedins_code="H11010500001", setl_type="1"),
        # C01 in 灵武市: this October 1000 + 2000, last October 1200; 贺兰县 has no last year.
        settlement("z1", sh(2023, 10, 3, 10), insu_admdvs="640181", fix_blng_admdvs="640181",
                   medfee_sumamt=D(1000)),
        settlement("z2", sh(2023, 10, 4, 10), insu_admdvs="640181", fix_blng_admdvs="640181",
                   medfee_sumamt=D(2000), psn_cash_pay=D(1260)),
        settlement("z0", sh(2022, 10, 4, 10), insu_admdvs="640181", fix_blng_admdvs="640181",
                   medfee_sumamt=D(1200), psn_cash_pay=D(460)),
        settlement("h1", sh(2023, 10, 4, 10), insu_admdvs="640122", fix_blng_admdvs="640122"),
    ]
    pair = enrolment("e7", sh(2023, 9, 6, 10), insu_admdvs="640106", insutype="310", emp_no="E7")
    enrolments = [
        enrolment("e1", sh(2023, 9, 5, 10), insu_admdvs="640100"),  # 市本级
        # I07 in 西夏区: one clean, one name with a full-width digit (E02), one 310 without employer (E08).
        enrolment("e2", sh(2023, 9, 5, 10), insu_admdvs="640105"),
        enrolment("e3", sh(2023, 9, 5, 10), insu_admdvs="640105", psn_name="王１"),
        enrolment("e4", sh(2023, 9, 5, 10), insu_admdvs="640105", insutype="310", emp_no="  "),
        # 金凤区: one certno active in both 310 and 390 (重复参保, E09): both records fail.
        pair, dict(enrolment("e7", sh(2023, 9, 7, 10), insu_admdvs="640106"), certno=pair["certno"]),
    ]

    write_avro(root / "filing" / "cases.avro", "filing", cases)
    write_avro(root / "contribution" / "k.avro", "contribution", contributions)
    write_avro(root / "settlement" / "s.avro", "settlement", settlements)
    write_avro(root / "settlement_list" / "l.avro", "settlement_list", lists)
    write_avro(root / "enrolment" / "e.avro", "enrolment", enrolments)
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{path}", "--as-of", AS_OF,
                 "--months", "2023-09..2023-10"])
    return path


def value(path, code, region, month, period_type="MONTH"):
    con = connect(str(path), read_only=True)
    try:
        return con.execute(
            """SELECT numerator, denominator, value, components FROM indicator_values
               WHERE indicator_code = ? AND region_code = ? AND period_type = ?
                 AND month(period_end) = ?""", [code, region, period_type, month]).fetchone()
    finally:
        con.close()


def nd(path, code, region, month, period_type="MONTH"):
    num, den, *_ = value(path, code, region, month, period_type)
    return (None if num is None else float(num), None if den is None else float(den))


def test_case_completion_over_holidays_and_overdue_open_cases(warehouse):
    # c1 on time (调休 Saturday), c2 late, c3 open and overdue; c4 not yet due; c5 REJECTED.
    assert nd(warehouse, "I24", "640104", 10) == (1, 3)
    assert nd(warehouse, "I24", "640104", 9) == (0, 0)
    assert nd(warehouse, "S02", "640104", 10) == (1, 2)  # completed c1 ONLINE, c2 WINDOW
    assert nd(warehouse, "I26", "640104", 10) == (1, 2)  # ratings 5 and 3
    assert nd(warehouse, "I25", "640104", 10) == (1, 2)


def test_contribution_t_plus_one(warehouse):
    assert nd(warehouse, "I10", "640104", 10) == (1, 2)


def test_settlement_list_day_30_and_not_yet_due(warehouse):
    assert nd(warehouse, "I13", "640104", 9) == (1, 2)  # sA day 30 on time, sB late
    assert nd(warehouse, "I13", "640104", 10) == (1, 1)  # sD counts, sC is not yet due


def test_cross_province_chronic_outpatient_county_coverage(warehouse):
    assert nd(warehouse, "I19", "640105", 10) == (1, 1)
    assert nd(warehouse, "I19", "640106", 10) == (0, 1)
    assert nd(warehouse, "I19", "640100", 10) == (1, 6)  # 银川 has six counties
    assert nd(warehouse, "I19", "640000", 10) == (1, 22)
    assert nd(warehouse, "I19", "640105", 9) == (0, 1)
    assert nd(warehouse, "I19", "640105", 10, "YTD") == (1, 1)


def test_cross_province_inpatient_direct_settlement(warehouse):
    assert nd(warehouse, "I22", "640121", 10) == (1, 2)
    assert nd(warehouse, "I22", "640100", 10) == (1, 2)


def test_city_level_enrolment_counts_at_pooling_and_province_only(warehouse):
    # 银川 = the 市本级 record + 西夏区's three + 金凤区's two; no county holds the 市本级 one.
    assert nd(warehouse, "I07", "640100", 9) == (2, 6)
    assert nd(warehouse, "I07", "640000", 10) == (2, 6)  # stocks: still there at October's end
    assert nd(warehouse, "I07", "640104", 9) == (0, 0)
    # I09 persons: 西夏区 3, 金凤区 1 (one certno in 310 and 390 counts once), 市本级 1.
    assert nd(warehouse, "I09", "640105", 10)[0] == 3
    assert nd(warehouse, "I09", "640106", 10)[0] == 1
    num, den = nd(warehouse, "I09", "640100", 10)
    assert num == 5 and den > 1_000_000  # 银川's counties' registered population


def test_enrolment_qualification_rate_from_the_verdicts(warehouse):
    assert nd(warehouse, "I07", "640105", 9) == (1, 3)  # E02 and E08 fail
    assert nd(warehouse, "I07", "640106", 9) == (0, 2)  # E09 fails both
    assert nd(warehouse, "I07", "640100", 9, "YTD") == (2, 6)


def test_catalogue_indicators_use_the_most_specific_matter_rows(warehouse):
    # 兴庆区: ENROL, OFFSITE, its own MANUAL_REIMB row and 银川's TRANSFER row are online.
    assert nd(warehouse, "I04", "640104", 10) == (4, 6)
    assert nd(warehouse, "I04", "640105", 10) == (3, 6)  # 银川's TRANSFER row only
    assert nd(warehouse, "I04", "640202", 10) == (2, 6)  # general rows only
    assert nd(warehouse, "I04", "640100", 10) == (3, 6)  # a pooling region ignores county rows
    assert nd(warehouse, "I04", "640000", 10) == (2, 6)
    assert nd(warehouse, "S01", "640104", 10) == (3, 6)
    assert nd(warehouse, "S05", "640104", 10) == (100, 125)
    assert nd(warehouse, "S05", "640202", 10) == (80, 125)


def test_c01_with_and_without_last_years_data(warehouse):
    num, den, val, comps = value(warehouse, "C01", "640181", 10)
    assert (num, den) == (Decimal(300), Decimal(1200))  # avg 1500 vs 1200
    assert val == pytest.approx(0.25)
    assert json.loads(comps) == {"cur_sum": "3000.00", "cur_cnt": 2, "prev_sum": "1200.00",
                                 "prev_cnt": 1}
    num, den, val, comps = value(warehouse, "C01", "640122", 10)
    assert (num, den, val) == (None, None, None)
    assert json.loads(comps)["prev_cnt"] == 0
