"""Edge cases of the rule catalogue (QUALITY_RULES.md), run through the
compiled SQL (``expectations.verdict_sql``) on DuckDB.

Each case is a few records built from a valid base record and the exact set
of rules each record fails.  tests/test_quality_parity.py runs the same
cases through Great Expectations.
"""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from stdnum.cn.ric import calc_check_digit

import expectations
import reference
import schemas

UTC = dt.UTC
STREAMS = ("enrolment", "settlement", "filing", "contribution", "settlement_list")


# -- a small reference set: the real regions, our own institutions and matters --------


def fixture_reference() -> reference.Reference:
    path = Path(reference.__file__).parent / "ningxia" / "regions.csv"
    with path.open(encoding="utf-8") as fh:
        regions = {r["code"]: reference.Region(r["code"], r["name"], r["level"], r["parent_code"],
                                               r["pooling_code"]) for r in csv.DictReader(fh)}
    institutions = [{"fixmedins_code": c, "admdvs": c[1:7]}
                    for c in ("H64010400001", "H64010500002", "P64020200003", "H64030200004")]
    matters = [  # general rows, then the province's, a pooling region's and a county's
        {"matter_code": "ENROL", "region_code": None},
        {"matter_code": "MANUAL_REIMB", "region_code": None},
        {"matter_code": "OFFSITE_FILING", "region_code": "640000"},
        {"matter_code": "TRANSFER", "region_code": "640000"},
        {"matter_code": "CHRONIC_DISEASE", "region_code": "640100"},
        {"matter_code": "MATERNITY_ALLOWANCE", "region_code": "640104"},
        {"matter_code": "LOCAL_ONLY", "region_code": "640302"},
    ]
    return reference.Reference(Path("tests/fixture"), regions, institutions, [], matters)


REF = fixture_reference()


def resident_id(first17: str) -> str:
    """first17 + its ISO 7064 MOD 11-2 check character."""
    return first17 + calc_check_digit(first17 + "?")


# -- valid base records -------------------------------------------------------------


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def enrolment(**over) -> dict:
    row = dict(event_id="e1", event_time=ts("2024-03-01T10:00:00+08:00"), psn_no="p1",
               psn_cert_type="01", certno=resident_id("64010419900101001"), psn_name="张三",
               gend="1", brdy=dt.date(1990, 1, 1), insutype="310", psn_insu_stas="1",
               insu_admdvs="640104", emp_no="E0001", crt_insu_date=dt.date(2020, 1, 1),
               paus_insu_date=None)
    return {**row, **over}


MONEY = ("medfee_sumamt", "inscp_scp_amt", "hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay",
         "hifob_pay", "hifdm_pay", "maf_pay", "oth_pay", "fund_pay_sumamt", "acct_pay",
         "acct_mulaid_pay", "psn_cash_pay", "hosp_part_amt")


def amounts(sign: int = 1, **over) -> dict:
    """60 fund + 10 account + 30 cash = 100 total, 80 in policy scope."""
    base = dict.fromkeys(MONEY, Decimal("0.00"))
    base.update(medfee_sumamt=Decimal("100.00"), inscp_scp_amt=Decimal("80.00"),
                hifp_pay=Decimal("60.00"), fund_pay_sumamt=Decimal("60.00"),
                acct_pay=Decimal("10.00"), psn_cash_pay=Decimal("30.00"))
    base = {k: v * sign for k, v in base.items()}
    return {**base, **{k: Decimal(v) for k, v in over.items()}}


def settlement(**over) -> dict:
    row = dict(event_id="e1", event_time=ts("2024-03-01T12:00:00+08:00"), setl_id="s1",
               mdtrt_id="m1", psn_no="p1", insutype="310", insu_admdvs="640104",
               fix_blng_admdvs="640104", fixmedins_code="H64010400001", med_type="11",
               begndate=dt.date(2024, 3, 1), enddate=dt.date(2024, 3, 1),
               setl_time=ts("2024-03-01T11:00:00+08:00"), **amounts(),
               dscg_maindiag_code=None, dise_codg=None, pay_method="ITEM", setl_type="2",
               smart_audit=True, assist_grp="NONE", refd_setl_flag="0", init_setl_id=None)
    return {**row, **over}


def filing(**over) -> dict:
    row = dict(event_id="e1", event_time=ts("2024-03-02T10:00:00+08:00"), case_id="c1",
               matter_code="ENROL", insu_admdvs="640104", channel="ONLINE", cross_province=False,
               status="COMPLETED", submitted_time=ts("2024-03-01T09:00:00+08:00"),
               completed_time=ts("2024-03-02T09:00:00+08:00"), promised_working_days=5, rating=5)
    return {**row, **over}


def contribution(**over) -> dict:
    row = dict(event_id="e1", event_time=ts("2024-03-01T10:00:00+08:00"), psn_no="p1",
               insutype="310", insu_admdvs="640104", accrym_begn="202401", accrym_end="202403",
               clct_type="10", psn_clct_amt=Decimal("100.00"), emp_clct_amt=Decimal("200.00"),
               oth_clct_amt=Decimal("0.00"), clct_time=ts("2024-03-01T09:00:00+08:00"),
               upld_time=ts("2024-03-01T10:00:00+08:00"))
    return {**row, **over}


def settlement_list(**over) -> dict:
    row = dict(event_id="e1", event_time=ts("2024-03-02T10:00:00+08:00"), setl_id="s1",
               fixmedins_code="H64010400001", upload_time=ts("2024-03-02T09:00:00+08:00"),
               diag_codes=["I10"], oprn_codes=[])
    return {**row, **over}


BASE = {"enrolment": enrolment, "settlement": settlement, "filing": filing,
        "contribution": contribution, "settlement_list": settlement_list}


# -- running the compiled rules -------------------------------------------------------


def arrow_table(stream: str, rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table of the contract schema (every field nullable, so
    that tests can also hand over nulls the decoder would have rejected)."""
    fields = [f.with_nullable(True) for f in schemas.load(stream).arrow]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def sql_failures(stream: str, table: pa.Table, ref=REF) -> dict[str, set[int]]:
    """rule_id -> failing row positions, from verdict_sql on DuckDB."""
    con = duckdb.connect()
    con.register(stream, table.append_column("_pos", pa.array(range(table.num_rows), pa.int64())))
    result = con.sql(expectations.verdict_sql(stream, ref, stream))
    rule_ids = [r.rule_id for r in expectations.rules(stream)]
    assert result.columns[-len(rule_ids):] == rule_ids
    out: dict[str, set[int]] = {r: set() for r in rule_ids}
    for pos, *verdicts in result.select(", ".join(["_pos", *(f'"{r}"' for r in rule_ids)])).fetchall():
        for rule, failed in zip(rule_ids, verdicts, strict=True):
            assert failed is not None, f"{rule} is NULL at row {pos}"
            if failed:
                out[rule].add(pos)
    return out


def per_row(failures: dict[str, set[int]], n: int) -> list[set[str]]:
    return [{rule for rule, rows in failures.items() if i in rows} for i in range(n)]


# -- the cases: (id, stream, records, rules each record fails) --------------------------

D = dt.date
ID_1990 = resident_id("64010419900101001")  # 17th digit 1: male
X_CHECK = "64010419900101019X"  # a real ID whose check character is X
assert resident_id(X_CHECK[:17]) == X_CHECK


def _wrong_check(certno: str) -> str:
    return certno[:17] + ("0" if certno[17] != "0" else "1")


CASES = [
    # E01 resident ID
    ("id wrong check character: E01, and E03/E04 no longer apply", "enrolment",
     [enrolment(certno=_wrong_check(ID_1990), gend="2", brdy=D(1999, 9, 9))], [{"E01"}]),
    ("id with X as check character", "enrolment",
     [enrolment(certno=X_CHECK, gend="1")], [set()]),
    ("id with lowercase x", "enrolment", [enrolment(certno=X_CHECK.lower())], [{"E01"}]),
    ("id birth date 29 Feb of a leap year", "enrolment",
     [enrolment(certno=resident_id("64010420000229001"), brdy=D(2000, 2, 29))], [set()]),
    ("id birth date 29 Feb of a non-leap year", "enrolment",
     [enrolment(certno=resident_id("64010420230229001"), brdy=D(2023, 2, 28))], [{"E01"}]),
    ("id birth date 29 Feb 1900 (not a leap year)", "enrolment",
     [enrolment(certno=resident_id("64010419000229001"))], [{"E01"}]),
    ("id born 1900-01-01 is the earliest allowed", "enrolment",
     [enrolment(certno=resident_id("64010419000101001"), brdy=D(1900, 1, 1))], [set()]),
    ("id born 1899-12-31", "enrolment",
     [enrolment(certno=resident_id("64010418991231001"))], [{"E01"}]),
    ("id with a county code no longer in use is valid", "enrolment",
     [enrolment(certno=resident_id("64010219900101001"))], [set()]),
    ("id from another province is valid", "enrolment",
     [enrolment(certno=resident_id("11010519900101001"))], [set()]),
    ("id whose first two digits are no province", "enrolment",
     [enrolment(certno=resident_id("99010519900101001"))], [{"E01"}]),
    ("id with a full-width digit", "enrolment",
     [enrolment(certno="６" + ID_1990[1:])], [{"E01"}]),
    ("id of 17 characters", "enrolment", [enrolment(certno=ID_1990[:17])], [{"E01"}]),
    ("id with a trailing newline", "enrolment", [enrolment(certno=ID_1990 + "\n")], [{"E01"}]),
    ("id born on the business date of event_time (just after midnight UTC+8)", "enrolment",
     [enrolment(certno=resident_id("64010420240302001"), brdy=D(2024, 3, 2), crt_insu_date=D(2024, 3, 2),
                event_time=ts("2024-03-01T16:30:00+00:00"))], [set()]),
    ("id born the day after the business date of event_time", "enrolment",
     [enrolment(certno=resident_id("64010420240302001"), brdy=D(2024, 3, 2), crt_insu_date=D(2024, 3, 1),
                event_time=ts("2024-03-01T15:59:59+00:00"))], [{"E01"}]),
    ("other certificate types are not checked as IDs", "enrolment",
     [enrolment(psn_cert_type="90", certno="not-an-id", gend="9", brdy=D(1999, 1, 1))], [set()]),
    # E02 name
    ("full-width digit in a name", "enrolment", [enrolment(psn_name="张３")], [{"E02"}]),
    ("ASCII digit in a name", "enrolment", [enrolment(psn_name="张3")], [{"E02"}]),
    ("U+3000 leading space in a name", "enrolment", [enrolment(psn_name="\u3000张三")], [{"E02"}]),
    ("trailing no-break space in a name", "enrolment", [enrolment(psn_name="张三\xa0")], [{"E02"}]),
    ("inner space in a name", "enrolment", [enrolment(psn_name="Mary Ann")], [set()]),
    ("U+001C is isspace() but not White_Space", "enrolment", [enrolment(psn_name="\x1c张三")], [set()]),
    ("name of one code point", "enrolment", [enrolment(psn_name="张")], [{"E02"}]),
    ("name of 30 code points (astral ones count once)", "enrolment",
     [enrolment(psn_name="𠀀" * 30)], [set()]),
    ("name of 31 code points", "enrolment", [enrolment(psn_name="张" * 31)], [{"E02"}]),
    # E03 / E04
    ("gender disagreeing with the ID", "enrolment", [enrolment(gend="2")], [{"E03"}]),
    ("gender 9 with a valid ID", "enrolment", [enrolment(gend="9")], [{"E03"}]),
    ("gender outside the code set", "enrolment",
     [enrolment(psn_cert_type="90", gend="3")], [{"E03"}]),
    ("female ID", "enrolment",
     [enrolment(certno=resident_id("64010419900101002"), gend="2")], [set()]),
    ("birth date disagreeing with the ID", "enrolment", [enrolment(brdy=D(1990, 1, 2))], [{"E04"}]),
    # E05 / E06
    ("unknown insutype, status and certificate type", "enrolment",
     [enrolment(insutype="999"), enrolment(psn_insu_stas="3"),
      enrolment(psn_cert_type="18", certno="x")], [{"E05"}, {"E05"}, {"E05"}]),
    ("province, city and county enrolment are local", "enrolment",
     [enrolment(insu_admdvs="640000"), enrolment(insu_admdvs="640100"),
      enrolment(insu_admdvs="640522")], [set(), set(), set()]),
    ("region outside regions.csv or outside the province", "enrolment",
     [enrolment(insu_admdvs="640199"), enrolment(insu_admdvs="110105")], [{"E06"}, {"E06"}]),
    # E07 dates (business date of event_time)
    ("suspension before enrolment", "enrolment",
     [enrolment(paus_insu_date=D(2019, 12, 31)), enrolment(paus_insu_date=D(2020, 1, 1))],
     [{"E07"}, set()]),
    ("enrolment date on the business date of event_time, just after midnight UTC+8", "enrolment",
     [enrolment(crt_insu_date=D(2024, 3, 2), event_time=ts("2024-03-01T16:00:00+00:00"))], [set()]),
    ("enrolment date after the business date of event_time, just before midnight UTC+8", "enrolment",
     [enrolment(crt_insu_date=D(2024, 3, 2), event_time=ts("2024-03-01T15:59:59.999+00:00"))], [{"E07"}]),
    # E08 employer
    ("employee insurance without employer", "enrolment",
     [enrolment(emp_no=None), enrolment(emp_no=""), enrolment(emp_no=" \u3000"),
      enrolment(emp_no="\x1c")], [{"E08"}, {"E08"}, {"E08"}, set()]),
    ("residents' insurance needs no employer", "enrolment",
     [enrolment(insutype="390", emp_no=None)], [set()]),
    # E09 duplicate 310 + 390 enrolment
    ("310 and 390 both active for one certno: both fail, other certnos not", "enrolment",
     [enrolment(), enrolment(psn_no="p2", insutype="390", insu_admdvs="640302"),
      enrolment(psn_no="p3", certno=resident_id("64010419900101002"), gend="2"),
      enrolment(psn_no="p4", insutype="391")],
     [{"E09"}, {"E09"}, set(), set()]),
    ("310 and 390 for one certno where one is stopped: not E09", "enrolment",
     [enrolment(), enrolment(psn_no="p2", insutype="390", psn_insu_stas="4")], [set(), set()]),
    ("two active 310 records are not E09", "enrolment",
     [enrolment(), enrolment(psn_no="p2", insu_admdvs="640105")], [set(), set()]),
    # T01 institution
    ("institution code shape", "settlement",
     [settlement(fixmedins_code="X64010400001", fix_blng_admdvs="110105"),
      settlement(fixmedins_code="H6401040000", fix_blng_admdvs="110105"),
      settlement(fixmedins_code="H６4010400001", fix_blng_admdvs="110105"),
      settlement(fixmedins_code="H11010500009\n", fix_blng_admdvs="110105"),
      settlement(fixmedins_code="P11010500009", fix_blng_admdvs="110105")],
     [{"T01"}, {"T01"}, {"T01"}, {"T01"}, set()]),
    ("local institution missing from institutions.csv", "settlement",
     [settlement(fixmedins_code="H64010499999"),
      settlement(fixmedins_code="H64030200004", fix_blng_admdvs="640302")], [{"T01"}, set()]),
    # T02 codes
    ("med_type length and category", "settlement",
     [settlement(med_type="1401"), settlement(med_type="140104"), settlement(med_type="1401041"),
      settlement(med_type="1"), settlement(med_type="17"), settlement(med_type="２１")],
     [set(), set(), {"T02"}, {"T02"}, {"T02"}, {"T02"}]),
    ("settlement code sets", "settlement",
     [settlement(setl_type="4"), settlement(pay_method="FEE"), settlement(assist_grp="POOR"),
      settlement(insutype="300"), settlement(refd_setl_flag="2")],
     [{"T02"}, {"T02"}, {"T02"}, {"T02"}, {"T02"}]),
    # T03 signs, T04/T05 balances, T06 policy scope
    ("reversal with negative amounts", "settlement",
     [settlement(setl_id="s2", refd_setl_flag="1", init_setl_id="s1", **amounts(-1))], [set()]),
    ("reversal with a positive amount", "settlement",
     [settlement(refd_setl_flag="1", **amounts(-1, acct_mulaid_pay="0.01", psn_cash_pay="-30.01"))],
     [{"T03"}]),
    ("normal settlement with a negative amount", "settlement",
     [settlement(**amounts(hosp_part_amt="-5.00", psn_cash_pay="35.00"))], [{"T03"}]),
    ("amounts balancing within 0.01", "settlement",
     [settlement(**amounts(psn_cash_pay="30.01")), settlement(**amounts(psn_cash_pay="29.99")),
      settlement(**amounts(hifp_pay="59.99"))], [set(), set(), set()]),
    ("amounts off by 0.02", "settlement",
     [settlement(**amounts(psn_cash_pay="30.02")), settlement(**amounts(hifp_pay="59.98"))],
     [{"T04"}, {"T05"}]),
    ("policy scope above the total", "settlement",
     [settlement(**amounts(inscp_scp_amt="100.01")),
      settlement(refd_setl_flag="1", **amounts(-1, inscp_scp_amt="-100.01")),
      settlement(refd_setl_flag="1", **amounts(-1, inscp_scp_amt="-100.00"))],
     [{"T06"}, {"T06"}, set()]),
    # T07 dates (business date of setl_time)
    ("enddate equal to the settlement's business date, just after midnight UTC+8", "settlement",
     [settlement(begndate=D(2024, 2, 28), enddate=D(2024, 3, 2),
                 setl_time=ts("2024-03-01T16:00:00+00:00"))], [set()]),
    ("enddate after the settlement's business date, just before midnight UTC+8", "settlement",
     [settlement(begndate=D(2024, 2, 28), enddate=D(2024, 3, 2),
                 setl_time=ts("2024-03-01T15:59:59+00:00"))], [{"T07"}]),
    ("begndate after enddate", "settlement",
     [settlement(begndate=D(2024, 3, 2), enddate=D(2024, 3, 1))], [{"T07"}]),
    # T08 inpatient diagnosis
    ("chronic outpatient with a dise_codg and no diagnosis: T08 does not apply", "settlement",
     [settlement(med_type="1401", dise_codg="M03900")], [set()]),
    ("inpatient without a diagnosis", "settlement",
     [settlement(med_type="2101", dise_codg="D001"), settlement(med_type="52", dscg_maindiag_code="")],
     [{"T08"}, {"T08"}]),
    ("inpatient diagnoses of the national edition", "settlement",
     [settlement(med_type=m, dscg_maindiag_code=c) for m, c in
      (("21", "I10"), ("2201", "J18.9"), ("28", "I10.x00x002"), ("5212", "E14.900x001"))],
     [set()] * 4),
    ("inpatient diagnoses not matching the pattern", "settlement",
     [settlement(med_type="21", dscg_maindiag_code=c) for c in
      ("i10", "I1", "I10.", "I10.x00x0021", "I10\n", "I10.x00X002")],
     [{"T08"}] * 6),
    # T09 regions
    ("another province's insured at a local institution", "settlement",
     [settlement(insu_admdvs="110105")], [set()]),
    ("local insured at another province's institution", "settlement",
     [settlement(fix_blng_admdvs="310101", fixmedins_code="H31010100001")], [set()]),
    ("neither side local", "settlement",
     [settlement(insu_admdvs="110105", fix_blng_admdvs="310101", fixmedins_code="H31010100001")],
     [{"T09"}]),
    ("unknown local code or a province code for the institution", "settlement",
     [settlement(insu_admdvs="640199"), settlement(fix_blng_admdvs="640000"),
      settlement(insu_admdvs="640000"), settlement(insu_admdvs="990000")],
     [{"T09"}, {"T09"}, set(), {"T09"}]),
    # F01-F04 filing
    ("filing code sets", "filing",
     [filing(status="DONE", completed_time=None), filing(channel="FAX")], [{"F01"}, {"F01"}]),
    ("completed_time present exactly when closed", "filing",
     [filing(status="REJECTED"), filing(status="ACCEPTED"), filing(completed_time=None),
      filing(status="SUBMITTED", completed_time=None)],
     [set(), {"F02"}, {"F02"}, set()]),
    ("completed before submitted", "filing",
     [filing(completed_time=ts("2024-03-01T08:59:59+08:00")),
      filing(completed_time=ts("2024-03-01T09:00:00+08:00"))], [{"F02"}, set()]),
    ("matters applying at the case's region", "filing",
     [filing(matter_code=m, insu_admdvs=r) for m, r in (
         ("MATERNITY_ALLOWANCE", "640104"), ("CHRONIC_DISEASE", "640105"), ("CHRONIC_DISEASE", "640100"),
         ("TRANSFER", "640000"), ("TRANSFER", "640199"), ("ENROL", "110105"), ("ENROL", "990000"))],
     [set()] * 7),
    ("matters not applying at the case's region", "filing",
     [filing(matter_code=m, insu_admdvs=r) for m, r in (
         ("MATERNITY_ALLOWANCE", "640105"), ("CHRONIC_DISEASE", "640302"), ("CHRONIC_DISEASE", "640000"),
         ("TRANSFER", "110105"), ("LOCAL_ONLY", "640300"), ("UNKNOWN", "640104"))],
     [{"F03"}] * 6),
    ("rating", "filing", [filing(rating=None), filing(rating=1), filing(rating=0), filing(rating=6)],
     [set(), set(), {"F04"}, {"F04"}]),
    # structural checks
    ("contribution checks", "contribution",
     [contribution(psn_no=""), contribution(clct_type="20"), contribution(accrym_begn="202413"),
      contribution(accrym_begn="202404"), contribution(accrym_end="2024-03")],
     [{"K01"}, {"K02"}, {"K03"}, {"K03"}, {"K03"}]),
    ("settlement list checks", "settlement_list",
     [settlement_list(setl_id=""), settlement_list(fixmedins_code="H640104")], [{"L01"}, {"L02"}]),
]


@pytest.mark.parametrize("stream", STREAMS)
def test_valid_base_record_fails_no_rule(stream):
    failures = sql_failures(stream, arrow_table(stream, [BASE[stream]()]))
    assert per_row(failures, 1) == [set()]


@pytest.mark.parametrize(("name", "stream", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_edge_case(name, stream, rows, expected):
    failures = sql_failures(stream, arrow_table(stream, rows))
    assert per_row(failures, len(rows)) == expected


def test_verdict_sql_keeps_the_relation_columns_and_adds_one_boolean_per_rule():
    con = duckdb.connect()
    con.register("settlement", arrow_table("settlement", [settlement()]))
    result = con.sql(expectations.verdict_sql("settlement", REF, "settlement"))
    names = schemas.load("settlement").arrow.names
    rule_ids = [r.rule_id for r in expectations.rules("settlement")]
    assert result.columns == names + rule_ids
    assert all(t == "BOOLEAN" for t in result.types[len(names):])


def test_catalogue():
    ids = {s: [r.rule_id for r in expectations.rules(s)] for s in STREAMS}
    assert ids["enrolment"] == [f"E0{i}" for i in range(1, 10)]
    assert ids["settlement"] == [f"T0{i}" for i in range(1, 10)]
    assert ids["filing"] == ["F01", "F02", "F03", "F04"]
    severities = {r.rule_id: r.severity for s in STREAMS for r in expectations.rules(s)}
    assert {k for k, v in severities.items() if v == "blocking"} == {
        "E05", "E06", "T02", "T03", "T09", "F01", "F02", "F03", "F04"}
    assert all(r.description for s in STREAMS for r in expectations.rules(s))
    # the structural rules stay out of the I07/I08 sets
    assert all(r.rule_id[0] in "KL" for s in ("contribution", "settlement_list") for r in expectations.rules(s))
    # derived columns are reported by their source column
    assert expectations.rules("settlement")[6].columns == ("enddate", "begndate", "setl_time")


def test_importing_expectations_does_not_import_great_expectations():
    import subprocess
    import sys

    code = "import sys, expectations; expectations.rules('settlement'); print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_regex_outside_the_common_subset_is_refused():
    from expectations.compile import expectation_sql

    for regex in (r"^[HP]\d{11}$", r"\A\w+\Z", r"\A[0-9]+$", r"(?i)\Ah\Z", r"\Ax{,3}\Z"):
        exp = {"type": "expect_column_values_to_match_regex", "meta": {"rule_id": "X"},
               "kwargs": {"column": "c", "regex": regex}}
        with pytest.raises(ValueError):
            expectation_sql(exp, {})


def test_unsupported_kwargs_are_refused():
    from expectations.compile import expectation_sql

    exp = {"type": "expect_column_values_to_be_in_set", "meta": {"rule_id": "X"},
           "kwargs": {"column": "c", "value_set": ["a"], "mostly": 0.9}}
    with pytest.raises(ValueError, match="mostly"):
        expectation_sql(exp, {})
