"""Hand-computed cases for the oracle's trickiest definitions (tiny Avro fixtures).

Every expected number below was worked out by hand from INDICATORS.md / QUALITY_RULES.md /
DATA_CONTRACT.md; the comment next to it says why.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from stdnum.cn import ric as stdnum_ric

from tests.independent import oracle
from tests.independent.fixtures import (
    Fixture,
    contribution,
    cst,
    d,
    enrolment,
    filing,
    reversal_of,
    ric,
    schema,
    settlement,
    settlement_list,
    utc,
)

V = oracle.value
R = oracle.rule


def run(fx: Fixture, as_of, months):
    return oracle.compute(fx.root, fx.reference, as_of, months)


# --------------------------------------------------------------------------- shape


def test_grid_has_every_indicator_region_and_period(tmp_path):
    fx = Fixture(tmp_path / "in")
    out = run(fx, cst("2023-03-31 12:00"), ["2023-01", "2023-02", "2023-03"])
    ind, rules = out["indicators"], out["rules"]
    # 25 indicators x (22 counties + 5 pooling regions + province) x 3 months x MONTH/YTD
    assert len(ind) == 25 * 28 * 6
    assert len(rules) == 22 * 28 * 6
    assert set(ind.indicator_code) == set(oracle.INDICATORS)
    assert ind.groupby("region_level").region_code.nunique().to_dict() == {
        "county": 22, "pooling": 5, "province": 1}
    # empty input: 0/0 rows (catalogue and population aside)
    assert V(ind, "I14", "640000", "YTD", "2023-03-31") == (0, 0)
    assert V(ind, "C01", "640000", "YTD", "2023-03-31") == (None, None)
    assert V(ind, "I09", "640104", "MONTH", "2023-01-31") == (0, 1000)
    assert V(ind, "I19", "640100", "MONTH", "2023-01-31") == (0, 6)  # 6 counties in 银川
    assert R(rules, "T04", "640000", "MONTH", "2023-02-28") == (0, 0)


# ----------------------------------------------------------------- timezone boundary


def test_timezone_boundary_23_30_utc_31_jan_is_1_feb(tmp_path):
    fx = Fixture(tmp_path / "in")
    t = utc("2023-01-31 23:30")  # = 2023-02-01 07:30 Asia/Shanghai
    fx.write("settlement", [settlement(setl_time=t, event_time=t, enddate=d("2023-01-31"),
                                       begndate=d("2023-01-30"))])
    fx.write("contribution", [contribution(clct_time=t, upld_time=t, event_time=t)])
    fx.write("enrolment", [enrolment(event_time=t)])
    before = utc("2023-01-31 15:59:59")  # = 2023-01-31 23:59:59 Asia/Shanghai
    fx.write("settlement", [settlement(setl_id="S0", setl_time=before, event_time=before)],
             name="part-001.avro")
    ind = run(fx, cst("2023-02-28 12:00"), ["2023-01", "2023-02"])["indicators"]
    assert V(ind, "I14", "640104", "MONTH", "2023-01-31") == (1, 1)  # only S0
    assert V(ind, "I14", "640104", "MONTH", "2023-02-28") == (1, 1)
    assert V(ind, "I14", "640104", "YTD", "2023-02-28") == (2, 2)
    assert V(ind, "I10", "640104", "MONTH", "2023-01-31") == (0, 0)
    assert V(ind, "I10", "640104", "MONTH", "2023-02-28") == (1, 1)
    # enrolment stock: the version's business date (1 Feb) is after 31 Jan
    assert V(ind, "I07", "640104", "MONTH", "2023-01-31") == (0, 0)
    assert V(ind, "I07", "640104", "MONTH", "2023-02-28") == (1, 1)
    assert V(ind, "I07", "640104", "YTD", "2023-02-28") == (1, 1)  # stock, not summed


# -------------------------------------------------------------------------- reversal


def test_reversal_and_original_leave_business_indicators_but_count_in_i08(tmp_path):
    fx = Fixture(tmp_path / "in")
    s1 = settlement(setl_id="S1", event_time=cst("2023-01-10 12:00"))
    r1 = reversal_of(s1, event_time=cst("2023-01-12 12:00"), setl_time=cst("2023-01-12 12:00"))
    # a later normal version of S1 does not bring it back
    s1b = dict(settlement(setl_id="S1", event_time=cst("2023-01-20 12:00")))
    s2 = settlement(setl_id="S2", medfee_sumamt=Decimal("2000.00"),
                    psn_cash_pay=Decimal("1300.00"))
    s3 = settlement(setl_id="S3")
    # this reversal breaks T03 (positive amounts): it still removes S3
    r3 = reversal_of(s3, event_time=cst("2023-01-15 12:00"), setl_time=cst("2023-01-15 12:00"))
    r3.update(medfee_sumamt=Decimal("1000.00"))
    # a reversal whose event_time is after as_of does not exist yet: S4 stays in
    s4 = settlement(setl_id="S4")
    r4 = reversal_of(s4, event_time=cst("2023-04-02 12:00"), setl_time=cst("2023-01-15 12:00"))
    fx.write("settlement", [s1, r1, s1b, s2, s3, r3, s4, r4])
    out = run(fx, cst("2023-03-31 12:00"), ["2023-01"])
    ind, rules = out["indicators"], out["rules"]
    # business: only S2 and S4
    assert V(ind, "I14", "640104", "MONTH", "2023-01-31") == (2, 2)
    assert V(ind, "R02", "640104", "MONTH", "2023-01-31") == (Decimal("1200.00"),
                                                             Decimal("1600.00"))
    c01 = ind[(ind.indicator_code == "C01") & (ind.region_code == "640104")
              & (ind.period_type == "MONTH")].iloc[0].components
    assert c01 == {"cur_sum": Decimal("3000.00"), "cur_cnt": 2,
                   "prev_sum": Decimal("0"), "prev_cnt": 0}
    # I08: every latest version: S1 (its later version), S1-R, S2, S3, S3-R, S4 = 6;
    # S3-R fails T03 (and T04: fund+...+cash = -400 != 1000)
    assert V(ind, "I08", "640104", "MONTH", "2023-01-31") == (5, 6)
    assert R(rules, "T03", "640104", "MONTH", "2023-01-31") == (6, 1)
    assert R(rules, "T04", "640000", "MONTH", "2023-01-31") == (6, 1)


# --------------------------------------------------------------- conflicting duplicate


def test_conflicting_duplicate_smallest_path_wins_and_as_of_after(tmp_path):
    fx = Fixture(tmp_path / "in")
    a = settlement(event_id="E1", setl_id="S1", smart_audit=False)
    b = dict(a, smart_audit=True)  # same event_id, different content
    # E2: the copy that wins (smaller path) is later than as_of, the other copy is not:
    # the copy is chosen first, as_of applies after -> no record at all
    late = settlement(event_id="E2", setl_id="S2", event_time=cst("2023-04-05 00:00"))
    early = dict(late, event_time=cst("2023-01-10 12:00"))
    # "Z.avro" < "a.avro" in code points (whatever the locale): the Z copies win
    fx.write("settlement", [a, late], name="Z.avro")
    fx.write("settlement", [b, early], name="a.avro")
    # contributions: identical copies count once; in one file the smaller index wins
    c = contribution(event_id="C1")
    c_late = dict(c, upld_time=cst("2023-02-20 00:00"))
    fx.write("contribution", [c, c_late], name="m.avro")
    fx.write("contribution", [c_late, c], name="n.avro")
    ind = run(fx, cst("2023-03-31 12:00"), ["2023-01"])["indicators"]
    assert V(ind, "I14", "640104", "MONTH", "2023-01-31") == (0, 1)
    assert V(ind, "I08", "640104", "MONTH", "2023-01-31") == (1, 1)
    assert V(ind, "I10", "640104", "MONTH", "2023-01-31") == (1, 1)


# ------------------------------------------------------------------------------ I13


def test_i13_day_30_vs_31_and_not_yet_due(tmp_path):
    fx = Fixture(tmp_path / "in")
    t = cst("2023-01-10 12:00")
    recent = cst("2023-03-20 12:00")  # + 30 days > as_of
    sett, lists = [], []
    for sid, when in (("S1", t), ("S2", t), ("S3", t), ("S7", t), ("S8", t),
                      ("S4", recent), ("S5", recent), ("S6", recent)):
        sett.append(settlement(setl_id=sid, setl_time=when, event_time=when,
                               begndate=when.date(), enddate=when.date()))
    lists += [
        settlement_list(setl_id="S1", upload_time=cst("2023-02-09 12:00")),  # exactly +30 d
        settlement_list(setl_id="S2", upload_time=cst("2023-02-09 12:00:01")),  # +30 d 1 s
        settlement_list(setl_id="S3", upload_time=cst("2023-02-10 12:00")),  # day 31
        settlement_list(setl_id="S5", upload_time=cst("2023-03-21 12:00")),  # early, due later
        # S6: its only list arrived after as_of -> no list yet -> left out
        settlement_list(setl_id="S6", upload_time=cst("2023-03-21 12:00"),
                        event_time=cst("2023-04-01 12:00")),
        # S7: the early list is not received yet at as_of; the received one is late
        settlement_list(setl_id="S7", upload_time=cst("2023-01-11 12:00"),
                        event_time=cst("2023-04-01 12:00")),
        settlement_list(setl_id="S7", upload_time=cst("2023-02-20 12:00"),
                        event_time=cst("2023-02-20 12:00")),
        # S8: two lists, the earliest counts
        settlement_list(setl_id="S8", upload_time=cst("2023-03-01 12:00")),
        settlement_list(setl_id="S8", upload_time=cst("2023-01-20 12:00")),
    ]
    # not counted at all: manual settlement, pharmacy outpatient, reversed
    sett.append(settlement(setl_id="S9", setl_type="1"))
    sett.append(settlement(setl_id="S10", med_type="41", dscg_maindiag_code=None))
    fx.write("settlement", sett)
    fx.write("settlement_list", lists)
    ind = run(fx, cst("2023-03-31 12:00"), ["2023-01", "2023-02", "2023-03"])["indicators"]
    # January: S1 on time, S2 S3 S7 late, S8 on time
    assert V(ind, "I13", "640104", "MONTH", "2023-01-31") == (2, 5)
    # March: S4 and S6 not yet due (left out), S5 on time
    assert V(ind, "I13", "640104", "MONTH", "2023-03-31") == (1, 1)
    assert V(ind, "I13", "640000", "YTD", "2023-03-31") == (3, 6)
    # later as_of: S4 and S6 are due; S4 has no list (late), S6's list is now received
    ind = run(fx, cst("2023-04-30 12:00"), ["2023-03"])["indicators"]
    assert V(ind, "I13", "640104", "MONTH", "2023-03-31") == (2, 3)


# ------------------------------------------------------------------------------ I10


def test_i10_t_plus_1_in_business_dates(tmp_path):
    fx = Fixture(tmp_path / "in")
    clct = cst("2023-03-10 10:00")
    fx.write("contribution", [
        contribution(clct_time=clct, upld_time=cst("2023-03-11 23:59")),  # T+1: on time
        contribution(clct_time=clct, upld_time=cst("2023-03-12 00:01")),  # T+2: late
        contribution(clct_time=clct, upld_time=utc("2023-03-11 15:59")),  # 23:59 CST
        contribution(clct_time=clct, upld_time=utc("2023-03-11 16:01")),  # 00:01 CST T+2
        # money arriving 23:30 UTC on 9 Mar is 10 Mar locally; upload on the 11th is T+1
        contribution(clct_time=utc("2023-03-09 23:30"), upld_time=cst("2023-03-11 20:00")),
    ])
    ind = run(fx, cst("2023-03-31 12:00"), ["2023-03"])["indicators"]
    assert V(ind, "I10", "640104", "MONTH", "2023-03-31") == (3, 5)
    assert V(ind, "I10", "640100", "YTD", "2023-03-31") == (3, 5)


# --------------------------------------------------------------- working days (调休)


def test_completion_rule_around_national_day_2023(tmp_path):
    fx = Fixture(tmp_path / "in")
    off = dict(matter_code="OFFSITE_FILING", cross_province=True, channel="ONLINE",
               promised_working_days=1)
    sub = cst("2023-09-28 10:00")  # Thursday; 29 Sep - 6 Oct holiday; Sat 7 Oct works

    def case(case_id, submitted, completed=None, status="COMPLETED", **kw):
        return filing(case_id=case_id, submitted_time=submitted, completed_time=completed,
                      status=status, event_time=completed or submitted, **kw)

    fx.write("filing", [
        case("C1", sub, cst("2023-10-07 15:00"), **off),  # deadline Sat 7 Oct: on time
        case("C2", sub, cst("2023-10-08 09:00"), **off),  # late
        case("C3", cst("2023-09-30 10:00"), cst("2023-10-07 09:00"),  # N = 0 on a holiday
             **dict(off, promised_working_days=0)),
        case("C4", sub, status="ACCEPTED", **off),  # deadline 7 Oct: overdue on 9 Oct
        case("C5", cst("2023-10-07 10:00"), status="SUBMITTED", **off),  # Sun 8 Oct: overdue
        case("C6", cst("2023-10-08 10:00"), status="SUBMITTED", **off),  # 9 Oct: not yet
        case("C7", sub, cst("2023-10-08 10:00"), status="REJECTED", **off),  # never counted
        # S03: N = 10 -> deadline 18 Oct (7, 8, 9, 10, 11, 12, 13, 16, 17, 18); their own
        # promise (15 -> 25 Oct) decides I24
        case("C8", sub, cst("2023-10-18 17:00"), matter_code="MANUAL_REIMB",
             promised_working_days=15),
        case("C9", sub, cst("2023-10-19 09:00"), matter_code="MANUAL_REIMB",
             promised_working_days=15),
    ])
    ind = run(fx, cst("2023-10-09 12:00"), ["2023-09", "2023-10"])["indicators"]
    # I21: C1 on time, C2 late, C3 on time, C4 C5 overdue (dated by their deadline)
    assert V(ind, "I21", "640104", "MONTH", "2023-10-31") == (2, 5)
    assert V(ind, "I21", "640104", "MONTH", "2023-09-30") == (0, 0)
    assert V(ind, "I24", "640104", "MONTH", "2023-10-31") == (2, 5)  # C8 C9 not received
    assert V(ind, "S03", "640104", "MONTH", "2023-10-31") == (0, 0)

    ind = run(fx, cst("2023-10-31 12:00"), ["2023-10"])["indicators"]
    assert V(ind, "I21", "640104", "MONTH", "2023-10-31") == (2, 6)  # C6 now overdue
    assert V(ind, "I24", "640104", "MONTH", "2023-10-31") == (4, 8)  # + C8, C9 on time
    assert V(ind, "S03", "640104", "MONTH", "2023-10-31") == (1, 2)  # C9 after 18 Oct
    assert V(ind, "S03", "640000", "YTD", "2023-10-31") == (1, 2)
    assert V(ind, "S02", "640104", "MONTH", "2023-10-31") == (5, 5)  # C1 C2 C3 C8 C9
    # I25: MANUAL_REIMB is not online-capable in 640104 (county row of matters.csv)
    assert V(ind, "I25", "640104", "MONTH", "2023-10-31") == (3, 3)


# ---------------------------------------------------------------- 市本级 enrolment, I09


def test_city_level_enrolment_and_i09(tmp_path):
    fx = Fixture(tmp_path / "in")
    t = cst("2023-01-05 09:00")
    fx.write("enrolment", [
        enrolment(psn_no="P1", certno=ric("64010019800101001"), insu_admdvs="640100",
                  event_time=t),  # 市本级: pooling 640100 + province, no county
        enrolment(psn_no="P2", certno=ric("64010419800101013"), insutype="310",
                  emp_no="E1", event_time=t),
        enrolment(psn_no="P3", certno=ric("64000019800101003"), insu_admdvs="640000",
                  event_time=t),  # 自治区本级: province only
        enrolment(psn_no="P4", certno=ric("64999919800101005"), insu_admdvs="649999",
                  event_time=t),  # unknown local code: province only, fails E06
        enrolment(psn_no="P5", certno=ric("11010119800101007"), insu_admdvs="110101",
                  event_time=t),  # another province: nowhere
        # P6 is enrolled 390 in 640105 and 310 in 640104 (重复参保): E09 fails both,
        # and I09 counts the person once, where the later record is (640104)
        enrolment(psn_no="P6", certno=ric("64010519800101009"), insu_admdvs="640105",
                  event_time=t),
        enrolment(psn_no="P6", certno=ric("64010519800101009"), insu_admdvs="640104",
                  insutype="310", emp_no="E1", event_time=cst("2023-01-06 09:00")),
        # P7 suspended: not in I07 nor I09
        enrolment(psn_no="P7", certno=ric("64010419800101011"), psn_insu_stas="2",
                  event_time=t),
    ])
    out = run(fx, cst("2023-01-31 12:00"), ["2023-01"])
    ind, rules = out["indicators"], out["rules"]
    assert V(ind, "I07", "640104", "MONTH", "2023-01-31") == (1, 2)  # P2 ok, P6 fails E09
    assert V(ind, "I07", "640105", "MONTH", "2023-01-31") == (0, 1)
    assert V(ind, "I07", "640100", "MONTH", "2023-01-31") == (2, 4)  # P1 P2 | P6 x2
    assert V(ind, "I07", "640000", "YTD", "2023-01-31") == (3, 6)  # + P3, P4 (E06)
    assert R(rules, "E06", "640000", "MONTH", "2023-01-31") == (6, 1)
    assert R(rules, "E09", "640100", "MONTH", "2023-01-31") == (4, 2)
    # I09: persons P2 + P6 in 640104; P1 at pooling; P3 at province; population 1000 each
    assert V(ind, "I09", "640104", "MONTH", "2023-01-31") == (2, 1000)
    assert V(ind, "I09", "640105", "MONTH", "2023-01-31") == (0, 1000)
    assert V(ind, "I09", "640100", "MONTH", "2023-01-31") == (3, 6000)
    assert V(ind, "I09", "640000", "MONTH", "2023-01-31") == (4, 22000)


def test_resident_id_check_digit_matches_stdnum(tmp_path):
    fx = Fixture(tmp_path / "in")
    bodies = [f"6401041980{m:02d}{dd:02d}{s:03d}" for m, dd, s in
              ((1, 1, 1), (2, 28, 17), (12, 31, 998), (6, 15, 123), (3, 3, 456))]
    # NB stdnum's calc_check_digit wants the whole 18 characters (it drops the last one)
    good = [b + stdnum_ric.calc_check_digit(b + "?") for b in bodies]
    # (stdnum's is_valid would also check the county against its own, older code list)
    assert ric("11010519491231002") == "11010519491231002X"  # GB 11643's example
    assert good == [ric(b) for b in bodies]
    bad = [b + ("0" if g[-1] != "0" else "1") for b, g in zip(bodies, good)]
    recs = [enrolment(psn_no=f"G{i}", certno=c, brdy=d(f"1980-{c[10:12]}-{c[12:14]}"),
                      gend="1" if int(c[16]) % 2 else "2") for i, c in enumerate(good)]
    recs += [enrolment(psn_no=f"B{i}", certno=c, brdy=d(f"1980-{c[10:12]}-{c[12:14]}"),
                       gend="1" if int(c[16]) % 2 else "2") for i, c in enumerate(bad)]
    fx.write("enrolment", recs)
    rules = run(fx, cst("2023-01-31 12:00"), ["2023-01"])["rules"]
    assert R(rules, "E01", "640104", "MONTH", "2023-01-31") == (10, 5)
    assert R(rules, "E03", "640104", "MONTH", "2023-01-31") == (10, 0)


# ------------------------------------------------------------------------------ C01


def test_c01_with_and_without_last_years_data(tmp_path):
    fx = Fixture(tmp_path / "in")

    def inpatient(sid, when, amount, region="640104"):
        t = cst(when)
        return settlement(setl_id=sid, setl_time=t, event_time=t, begndate=t.date(),
                          enddate=t.date(), fix_blng_admdvs=region, medfee_sumamt=Decimal(amount),
                          psn_cash_pay=Decimal(amount) - Decimal("700.00"),
                          fixmedins_code="H64010400001" if region == "640104" else "H64010500001")

    fx.write("settlement", [
        inpatient("A", "2022-01-15 10:00", "1200.00"),
        inpatient("B", "2023-01-15 10:00", "1000.00"),
        inpatient("C", "2023-01-20 10:00", "2000.00"),
        inpatient("D", "2023-02-10 10:00", "800.00"),
        inpatient("E", "2022-01-20 10:00", "1800.00", region="640105"),
        # outpatient: not in C01
        settlement(setl_id="F", med_type="11", setl_time=cst("2023-01-15 10:00")),
    ])
    ind = run(fx, cst("2023-03-31 12:00"), ["2023-01", "2023-02"])["indicators"]

    def c01(region, ptype, end):
        r = ind[(ind.indicator_code == "C01") & (ind.region_code == region)
                & (ind.period_type == ptype) & (ind.period_end == d(end))].iloc[0]
        return r.numerator, r.denominator, r.components

    num, den, comp = c01("640104", "MONTH", "2023-01-31")
    assert (num, den) == (Decimal(300), Decimal(1200))  # avg 1500 vs 1200
    assert comp == {"cur_sum": Decimal("3000.00"), "cur_cnt": 2,
                    "prev_sum": Decimal("1200.00"), "prev_cnt": 1}
    num, den, comp = c01("640104", "MONTH", "2023-02-28")  # no February 2022
    assert (num, den) == (None, None)
    assert comp == {"cur_sum": Decimal("800.00"), "cur_cnt": 1,
                    "prev_sum": Decimal("0"), "prev_cnt": 0}
    num, den, _ = c01("640104", "YTD", "2023-02-28")  # 3800/3 vs 1200
    assert den == Decimal(1200)
    assert abs(num - (Decimal(3800) / 3 - 1200)) < Decimal("1e-20")
    num, den, _ = c01("640105", "MONTH", "2023-01-31")  # last year only
    assert (num, den) == (None, None)
    num, den, comp = c01("640100", "MONTH", "2023-01-31")  # roll-up adds the components
    assert comp == {"cur_sum": Decimal("3000.00"), "cur_cnt": 2,
                    "prev_sum": Decimal("3000.00"), "prev_cnt": 2}
    assert (num, den) == (Decimal(0), Decimal(1500))


# ---------------------------------------------------------------------- Avro reading


def test_damaged_and_evolved_files(tmp_path):
    fx = Fixture(tmp_path / "in")
    recs = [settlement(setl_id=f"S{i}") for i in range(10)]
    p = fx.write("settlement", recs, name="a.avro", sync_interval=1)  # one record per block
    data = p.read_bytes()
    p.write_bytes(data[:-5])  # last block's sync marker damaged: 9 records survive
    # older writer schema without dise_codg (it has a default): read by resolution
    old = schema("settlement")
    old["fields"] = [f for f in old["fields"] if f["name"] != "dise_codg"]
    fx.write("settlement", [{k: v for k, v in settlement(setl_id="O1").items()
                             if k != "dise_codg"}], name="b.avro", writer_schema=old)
    # incompatible writer schema (smart_audit a string): the whole file is dropped
    bad = schema("settlement")
    for f in bad["fields"]:
        if f["name"] == "smart_audit":
            f["type"] = "string"
    fx.write("settlement", [dict(settlement(setl_id="X1"), smart_audit="yes")], name="c.avro",
             writer_schema=bad)
    (fx.root / "settlement" / "d.avro").write_bytes(b"not avro at all")
    ind = run(fx, cst("2023-03-31 12:00"), ["2023-01"])["indicators"]
    assert V(ind, "I14", "640104", "MONTH", "2023-01-31") == (10, 10)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
