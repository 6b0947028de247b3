"""The generator (datagen) against its own truth.json, checked with this
file's own Avro reading and its own predicates for every quality rule —
written from QUALITY_RULES.md, not imported from the pipeline or datagen.

Generations are small (--persons 1500, two years) and run as separate
processes, as a user would run them.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import fastavro
import pytest
from stdnum.cn.ric import calc_check_digit

import schemas

ROOT = Path(__file__).resolve().parents[1]
STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")
SHANGHAI = ZoneInfo("Asia/Shanghai")
PERSONS = "1500"


def run_generator(out: Path, seed: int, hashseed: str = "0", *extra: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    subprocess.run([sys.executable, "-m", "datagen", "--out", str(out), "--seed", str(seed),
                    "--persons", PERSONS, *extra], cwd=ROOT, env=env, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "a"
    run_generator(out, seed=7, hashseed="1")
    return out


@pytest.fixture(scope="module")
def truth(generated) -> dict:
    return json.loads((generated / "truth.json").read_text(encoding="utf-8"))


# -- our own reader --------------------------------------------------------------
def read_file(path: Path, stream: str) -> tuple[list[dict], Exception | None]:
    """Records fastavro decodes with the contract as reader schema, and the
    error that stopped it (None when the file read to its end)."""
    out: list[dict] = []
    try:
        with path.open("rb") as fh:
            for rec in fastavro.reader(fh, reader_schema=schemas.load(stream).parsed):
                out.append(rec)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return out, exc
    return out, None


def read_all(directory: Path) -> dict[str, list[tuple[str, int, dict]]]:
    """stream -> (relative path, index, record) of every readable record."""
    out = {}
    for stream in STREAMS:
        rows = []
        for path in sorted((directory / stream).glob("*.avro")):
            recs, _ = read_file(path, stream)
            rel = f"{stream}/{path.name}"
            rows.extend((rel, i, r) for i, r in enumerate(recs))
        out[stream] = rows
    return out


@pytest.fixture(scope="module")
def decoded(generated):
    return read_all(generated)


def accepted(rows) -> list[dict]:
    """First copy of each event_id by (path, index)."""
    first = {}
    for _path, _index, rec in sorted(rows, key=lambda r: (r[0], r[1])):
        first.setdefault(rec["event_id"], rec)
    return list(first.values())


def key_of(stream: str, rec: dict):
    if stream == "enrolment":
        return (rec["psn_no"], rec["insutype"])
    return rec["setl_id"] if stream == "settlement" else rec["case_id"]


def latest(stream: str, recs: list[dict], as_of: dt.datetime) -> dict:
    best = {}
    for rec in recs:
        if rec["event_time"] > as_of:
            continue
        k = key_of(stream, rec)
        if k not in best or (rec["event_time"], rec["event_id"]) > (best[k]["event_time"],
                                                                     best[k]["event_id"]):
            best[k] = rec
    return best


def as_of_of(directory: Path) -> dt.datetime:
    return dt.datetime.fromisoformat((directory / "as_of.txt").read_text().strip())


def bdate(instant: dt.datetime) -> dt.date:
    return instant.astimezone(SHANGHAI).date()


# -- reference, read here --------------------------------------------------------------
class Ref:
    def __init__(self, directory: Path) -> None:
        def rows(name):
            with (directory / "reference" / name).open(encoding="utf-8") as fh:
                return list(csv.DictReader(fh))

        regions = rows("regions.csv")
        self.provinces = {r["code"] for r in regions if r["level"] == "province"}
        self.counties = {r["code"]: r["pooling_code"] for r in regions if r["level"] == "county"}
        self.cities = {r["code"] for r in regions if r["level"] == "city"}
        self.province = "640000"
        self.local = set(self.counties) | self.cities | {self.province}
        self.other_prefixes = {p[:2] for p in self.provinces} - {"64"}
        self.institutions = {r["fixmedins_code"] for r in rows("institutions.csv")}
        self.matters = rows("matters.csv")

    def matter_applies(self, matter: str, region: str) -> bool:
        chain = {self.province}
        if region in self.counties:
            chain |= {region, self.counties[region]}
        elif region in self.cities:
            chain.add(region)
        elif region[:2] != "64":
            chain = set()
        return any(m["matter_code"] == matter and (not m["region_code"]
                                                   or m["region_code"] in chain)
                   for m in self.matters)


# -- the rules, from QUALITY_RULES.md ------------------------------------------------------
WHITE_SPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                  "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
INSUTYPES = {"310", "320", "330", "340", "350", "360", "370", "380", "390", "391", "392", "399",
             "410", "510"}
CERT_TYPES = {f"{i:02d}" for i in range(1, 18)} | {"90", "99"}
CATEGORIES = {"11", "12", "13", "14", "15", "16", "21", "22", "23", "24", "25", "26", "28",
              "41", "51", "52"}
INPATIENT = {"21", "22", "23", "24", "25", "26", "28", "52"}
MONEY = ("medfee_sumamt", "inscp_scp_amt", "hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay",
         "hifob_pay", "hifdm_pay", "maf_pay", "oth_pay", "fund_pay_sumamt", "acct_pay",
         "acct_mulaid_pay", "psn_cash_pay", "hosp_part_amt")
FUNDS = ("hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "hifdm_pay",
         "maf_pay", "oth_pay")
CENT = Decimal("0.01")
DIAG = re.compile(r"[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,3}(x[0-9]{3})?)?")


def resident_id_ok(certno: str, event_time: dt.datetime, provinces: set[str]) -> bool:
    """E01 with python-stdnum's check digit and a date parse."""
    if not re.fullmatch(r"[0-9]{17}[0-9X]", certno) or certno[:2] + "0000" not in provinces:
        return False
    try:
        born = dt.date(int(certno[6:10]), int(certno[10:12]), int(certno[12:14]))
    except ValueError:
        return False
    if not dt.date(1900, 1, 1) <= born <= bdate(event_time):
        return False
    return calc_check_digit(certno) == certno[17]


def enrolment_failures(rec: dict, ref: Ref) -> set[str]:
    failed = set()
    e01_applies = rec["psn_cert_type"] == "01"
    id_ok = e01_applies and resident_id_ok(rec["certno"], rec["event_time"], ref.provinces)
    if e01_applies and not id_ok:
        failed.add("E01")
    name = rec["psn_name"]
    if not (2 <= len(name) <= 30 and not any(c.isdecimal() for c in name)
            and name[0] not in WHITE_SPACE and name[-1] not in WHITE_SPACE):
        failed.add("E02")
    gend = rec["gend"]
    if gend not in {"0", "1", "2", "9"} or (id_ok and (
            gend not in {"1", "2"} or (int(rec["certno"][16]) % 2 == 1) != (gend == "1"))):
        failed.add("E03")
    if id_ok and rec["brdy"] != dt.date(int(rec["certno"][6:10]), int(rec["certno"][10:12]),
                                        int(rec["certno"][12:14])):
        failed.add("E04")
    if (rec["insutype"] not in INSUTYPES or rec["psn_insu_stas"] not in {"0", "1", "2", "4"}
            or rec["psn_cert_type"] not in CERT_TYPES):
        failed.add("E05")
    if rec["insu_admdvs"] not in ref.local:
        failed.add("E06")
    crt, paus = rec["crt_insu_date"], rec["paus_insu_date"]
    if (paus is not None and crt > paus) or crt > bdate(rec["event_time"]):
        failed.add("E07")
    if rec["insutype"] == "310" and not (rec["emp_no"] or "").strip():
        failed.add("E08")
    return failed


def settlement_failures(rec: dict, ref: Ref) -> set[str]:
    failed = set()
    fix, insu = rec["fix_blng_admdvs"], rec["insu_admdvs"]
    fix_local = fix in ref.counties or fix in ref.cities
    if not re.fullmatch(r"[HP][0-9]{11}", rec["fixmedins_code"]) or (
            fix_local and rec["fixmedins_code"] not in ref.institutions):
        failed.add("T01")
    med = rec["med_type"]
    if not (2 <= len(med) <= 6 and med[:2] in CATEGORIES and rec["insutype"] in INSUTYPES
            and rec["setl_type"] in {"1", "2", "3"} and rec["refd_setl_flag"] in {"0", "1"}
            and rec["pay_method"] in {"DRG", "DIP", "ITEM", "BED_DAY", "CAPITATION", "DISEASE"}
            and rec["assist_grp"] in {"NONE", "TEKUN", "DIBAO", "DIBIAN", "RETURN_POOR"}):
        failed.add("T02")
    if (rec["refd_setl_flag"] == "0" and any(rec[f] < 0 for f in MONEY)) or (
            rec["refd_setl_flag"] == "1" and any(rec[f] > 0 for f in MONEY)):
        failed.add("T03")
    parts = sum(rec[f] for f in ("fund_pay_sumamt", "acct_pay", "acct_mulaid_pay",
                                 "psn_cash_pay", "hosp_part_amt"))
    if abs(parts - rec["medfee_sumamt"]) > CENT:
        failed.add("T04")
    if abs(sum(rec[f] for f in FUNDS) - rec["fund_pay_sumamt"]) > CENT:
        failed.add("T05")
    scope, total = rec["inscp_scp_amt"], rec["medfee_sumamt"]
    if (abs(scope) > abs(total)) if rec["refd_setl_flag"] == "1" else scope > total:
        failed.add("T06")
    if not rec["begndate"] <= rec["enddate"] <= bdate(rec["setl_time"]):
        failed.add("T07")
    code = rec["dscg_maindiag_code"]
    if med[:2] in INPATIENT and not (code and DIAG.fullmatch(code)):
        failed.add("T08")
    insu_ok = insu in ref.local or insu[:2] in ref.other_prefixes
    fix_ok = fix_local or fix[:2] in ref.other_prefixes
    if not (insu_ok and fix_ok and (insu in ref.local or fix_local)):
        failed.add("T09")
    return failed


def filing_failures(rec: dict, ref: Ref) -> set[str]:
    failed = set()
    closed = rec["status"] in {"COMPLETED", "REJECTED"}
    if rec["status"] not in {"SUBMITTED", "ACCEPTED", "COMPLETED", "REJECTED"} or \
            rec["channel"] not in {"ONLINE", "MOBILE", "SMS", "WINDOW", "KIOSK", "BANK", "PHONE",
                                   "MAIL"}:
        failed.add("F01")
    done = rec["completed_time"]
    if closed != (done is not None) or (done is not None and done < rec["submitted_time"]):
        failed.add("F02")
    if not ref.matter_applies(rec["matter_code"], rec["insu_admdvs"]):
        failed.add("F03")
    if rec["rating"] is not None and not 1 <= rec["rating"] <= 5:
        failed.add("F04")
    return failed


def duplicate_enrolment(latest_enrolment: dict) -> set:
    by_cert: dict[str, list] = {}
    for k, rec in latest_enrolment.items():
        if rec["psn_insu_stas"] == "1" and rec["insutype"] in {"310", "390"}:
            by_cert.setdefault(rec["certno"], []).append(k)
    return {k for keys in by_cert.values() if {k[1] for k in keys} == {"310", "390"}
            for k in keys}


def rule_failures(directory: Path, decoded) -> dict[str, set]:
    ref, as_of = Ref(directory), as_of_of(directory)
    out: dict[str, set] = {}
    checks = {"enrolment": enrolment_failures, "settlement": settlement_failures,
              "filing": filing_failures}
    for stream, check in checks.items():
        versions = latest(stream, accepted(decoded[stream]), as_of)
        for k, rec in versions.items():
            for rule in check(rec, ref):
                out.setdefault(rule, set()).add(k)
        if stream == "enrolment":
            out["E09"] = duplicate_enrolment(versions)
    return out


def truth_keys(truth: dict, rule: str) -> set:
    return {tuple(k) if isinstance(k, list) else k for k in truth["rules"][rule]["keys"]}


# -- tests ---------------------------------------------------------------------------------
ALL_RULES = [f"E0{i}" for i in range(1, 10)] + [f"T0{i}" for i in range(1, 10)] + \
    [f"F0{i}" for i in range(1, 5)]


def test_layout(generated, truth):
    for stream in STREAMS:
        assert len(list((generated / stream).glob("*.avro"))) >= 24, stream
    assert sorted(p.name for p in (generated / "reference").iterdir()) == [
        "SYNTHETIC", "institutions.csv", "matters.csv", "population.csv", "regions.csv"]
    assert (generated / "as_of.txt").read_text().strip() == "2023-12-31T23:59:59.999+08:00"
    assert truth["as_of"] == "2023-12-31T23:59:59.999+08:00"
    for key in ("streams", "files", "rules", "duplicates", "conflicting_duplicates",
                "corrections", "reversals", "late_events", "undecodable", "older_schema"):
        assert key in truth
    assert sorted(truth["rules"]) == sorted(ALL_RULES)
    on_disk = {f"{s}/{p.name}" for s in STREAMS for p in (generated / s).glob("*.avro")}
    assert on_disk == set(truth["files"])


@pytest.fixture(scope="module")
def found(generated, decoded) -> dict[str, set]:
    return rule_failures(generated, decoded)


@pytest.mark.parametrize("rule", ALL_RULES)
def test_rule_violations_match_truth(rule, found, truth):
    assert truth["rules"][rule]["count"] >= 3, "every rule should have several violations"
    assert truth["rules"][rule]["count"] == len(truth["rules"][rule]["keys"])
    assert found.get(rule, set()) == truth_keys(truth, rule)


def test_resident_ids(generated, decoded, truth):
    """Every ID the generator leaves valid passes our E01 check; every E01 defect fails."""
    ref, as_of = Ref(generated), as_of_of(generated)
    versions = latest("enrolment", accepted(decoded["enrolment"]), as_of)
    bad = truth_keys(truth, "E01")
    ids = [(k, r) for k, r in versions.items() if r["psn_cert_type"] == "01"]
    assert len(ids) > 1000
    for k, rec in ids:
        ok = resident_id_ok(rec["certno"], rec["event_time"], ref.provinces)
        assert ok == (k not in bad), (k, rec["certno"])
        if ok:  # and gend/brdy agree with the ID unless E03/E04 say otherwise
            assert (rec["gend"] == ("1" if int(rec["certno"][16]) % 2 else "2")) or \
                k in truth_keys(truth, "E03")


def test_file_reads_and_damaged_files(generated, truth):
    for rel, info in truth["files"].items():
        stream = rel.split("/")[0]
        recs, err = read_file(generated / rel, stream)
        assert len(recs) == info["readable_records"], rel
        if info["kind"] in ("good", "older_schema"):
            assert err is None, (rel, err)
            assert len(recs) == info["records_written"]
        else:
            assert err is not None, rel
    kinds = {u["kind"]: u for u in truth["undecodable"]}
    assert set(kinds) == {"truncated", "incompatible_schema", "not_avro"}
    trunc = kinds["truncated"]
    assert 0 < trunc["readable_records"] < trunc["records_written"]
    _, err = read_file(generated / kinds["incompatible_schema"]["path"], "filing")
    assert isinstance(err, fastavro.read.SchemaResolutionError)
    # the incompatible file is valid Avro by its own writer schema
    with (generated / kinds["incompatible_schema"]["path"]).open("rb") as fh:
        assert len(list(fastavro.reader(fh))) == kinds["incompatible_schema"]["records_written"]
    older = truth["older_schema"][0]
    with (generated / older["path"]).open("rb") as fh:
        reader = fastavro.reader(fh)
        names = [f["name"] for f in reader.writer_schema["fields"]]
        assert "init_setl_id" not in names
    recs, err = read_file(generated / older["path"], "settlement")
    assert err is None and recs and all(r["init_setl_id"] is None for r in recs)


def test_counts_reconcile(decoded, truth):
    for stream in STREAMS:
        s = truth["streams"][stream]
        assert len(decoded[stream]) == s["readable_records"]
        assert s["readable_records"] == s["accepted"] + s["duplicates"] + \
            s["conflicting_duplicates"]
        assert len(accepted(decoded[stream])) == s["accepted"]
        assert s["records_written"] == sum(f["records_written"] for f in truth["files"].values()
                                           if f["stream"] == stream)


def test_duplicates_and_conflicts(decoded, truth):
    for stream in STREAMS:
        copies: dict[str, list] = {}
        for path, index, rec in decoded[stream]:
            copies.setdefault(rec["event_id"], []).append((path, index, rec))
        same = {e for e, c in copies.items() if len(c) > 1 and all(x[2] == c[0][2] for x in c)}
        differ = {e for e, c in copies.items() if len(c) > 1} - same
        assert same == set(truth["duplicates"][stream]["event_ids"]), stream
        assert differ == set(truth["conflicting_duplicates"][stream]["event_ids"]), stream
        assert truth["duplicates"][stream]["count"] >= 3
        for c in truth["conflicting_duplicates"][stream]["copies"]:
            kept, dead = c["kept"], c["dead_lettered"]
            assert (kept["path"], kept["index"]) < (dead["path"], dead["index"])


def test_reversals(generated, decoded, truth):
    recs = accepted(decoded["settlement"])
    by_id: dict[str, list] = {}
    for r in recs:
        by_id.setdefault(r["setl_id"], []).append(r)
    reversals = {r["setl_id"]: r for r in recs if r["refd_setl_flag"] == "1"}
    assert set(reversals) == set(truth["reversals"]["keys"])
    assert truth["reversals"]["count"] >= 3
    defective = {k for r in truth["rules"].values() if r["stream"] == "settlement"
                 for k in r["keys"]}
    late_ones = 0
    for d in truth["reversals"]["details"]:
        rev = reversals[d["setl_id"]]
        assert rev["init_setl_id"] == d["init_setl_id"] != rev["setl_id"]
        original = min(by_id[d["init_setl_id"]], key=lambda r: r["event_time"])
        if not defective & {rev["setl_id"], original["setl_id"]}:
            assert all(rev[f] == -original[f] for f in MONEY)
        if d["resettled_as"]:
            again = by_id[d["resettled_as"]][0]
            assert again["mdtrt_id"] == original["mdtrt_id"]
            if d["arrives_after_resettlement"]:
                late_ones += 1
                assert rev["event_time"] > again["event_time"]
    assert late_ones >= 1


def test_corrections(generated, decoded, truth):
    as_of = as_of_of(generated)
    for stream in ("enrolment", "settlement"):
        versions: dict = {}
        for rec in accepted(decoded[stream]):
            if rec["event_time"] <= as_of:
                versions.setdefault(key_of(stream, rec), []).append(rec)
        multi = {k for k, v in versions.items() if len(v) > 1}
        corrected = {tuple(k) if isinstance(k, list) else k
                     for k in truth["corrections"][stream]["keys"]}
        assert truth["corrections"][stream]["count"] >= 3
        if stream == "settlement":
            assert multi == corrected
        else:
            lifecycle = {tuple(k) for k in truth["status_changes"]["enrolment"]["keys"]}
            assert multi == corrected | lifecycle and not corrected & lifecycle
        for k in corrected:
            old, new = sorted(versions[k], key=lambda r: (r["event_time"], r["event_id"]))[-2:]
            assert {f: v for f, v in old.items() if f not in ("event_id", "event_time")} != \
                {f: v for f, v in new.items() if f not in ("event_id", "event_time")}
    moves = [d for d in truth["corrections"]["settlement"]["details"]
             if d["kind"] in ("insu_move", "fix_move")]
    assert moves and all(d["from"] != d["to"] for d in moves)


def test_late_and_after_as_of(generated, decoded, truth):
    as_of = as_of_of(generated)
    times = {"contribution": "clct_time", "settlement": "setl_time",
             "settlement_list": "upload_time"}
    for stream in STREAMS:
        late = set()
        for rec in accepted(decoded[stream]):
            if stream == "enrolment":
                continue
            bt = rec[times[stream]] if stream in times else (rec["completed_time"] or
                                                             rec["submitted_time"])
            assert rec["event_time"] >= bt, (stream, rec["event_id"])
            if rec["event_time"] - bt >= dt.timedelta(hours=48):
                late.add(rec["event_id"])
        assert late == set(truth["late_events"][stream]["event_ids"]), stream
    for stream, info in truth["after_as_of"].items():
        after = {r["event_id"] for r in accepted(decoded[stream]) if r["event_time"] > as_of}
        assert after == set(info["event_ids"]) and info["count"] >= 1, stream


def test_population_is_the_generated_residents(generated, decoded):
    """Issue 15: "I09 (参保率) is 0.07–0.8 % in red because the synthetic persons
    are a sliver of the real registered population."  The generated reference's
    population is its own residents, marked SYNTHETIC, so the share of them
    enrolled (310/390, active, at as_of) is a realistic coverage."""
    def rows(path: Path) -> list[dict]:
        with path.open(encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    pop = rows(generated / "reference" / "population.csv")
    real = rows(ROOT / "reference" / "ningxia" / "population.csv")
    assert [(r["county_code"], r["year"]) for r in pop] == [
        (r["county_code"], r["year"]) for r in real]
    total: dict[int, int] = {}
    for r in pop:
        total[int(r["year"])] = total.get(int(r["year"]), 0) + int(r["registered_population"])
    assert total[2021] <= total[2022] <= total[2023] == total[2026] == int(PERSONS)
    assert "population.csv is synthetic" in (generated / "reference" / "SYNTHETIC").read_text()
    snapshot = latest("enrolment", accepted(decoded["enrolment"]), as_of_of(generated))
    enrolled = {r["certno"] for r in snapshot.values() if r["psn_insu_stas"] == "1"
                and r["insutype"] in ("310", "390") and r["insu_admdvs"][:2] == "64"}
    assert 0.85 < len(enrolled) / total[2023] < 1


def test_realistic_shapes(decoded):
    """A few invariants of clean data worth keeping."""
    setl = accepted(decoded["settlement"])
    cats = {r["med_type"][:2] for r in setl}
    assert {"11", "14", "21", "41", "52"} <= cats
    assert any(len(r["med_type"]) > 2 for r in setl)
    assert any(r["insu_admdvs"][:2] != "64" and r["fix_blng_admdvs"][:2] == "64" for r in setl)
    assert any(r["insu_admdvs"][:2] == "64" and r["fix_blng_admdvs"][:2] != "64" for r in setl)
    assert any(r["hifmi_pay"] > 0 for r in setl) and any(r["maf_pay"] > 0 for r in setl)
    enrol = accepted(decoded["enrolment"])
    assert {"640100", "640000"} & {r["insu_admdvs"] for r in enrol}
    statuses = {r["status"] for r in accepted(decoded["filing"])}
    assert {"SUBMITTED", "ACCEPTED", "COMPLETED", "REJECTED"} <= statuses
    channels = {r["channel"] for r in accepted(decoded["filing"])}
    assert {"ONLINE", "MOBILE", "WINDOW"} <= channels


def test_determinism(tmp_path, generated):
    """Same seed in another process with another hash seed: same records and
    bytes; another seed: other records."""
    again, other = tmp_path / "again", tmp_path / "other"
    run_generator(again, seed=7, hashseed="12345")
    run_generator(other, seed=8, hashseed="1")
    a, b, c = read_all(generated), read_all(again), read_all(other)
    for stream in STREAMS:
        assert [r[2] for r in a[stream]] == [r[2] for r in b[stream]], stream
        assert [r[2] for r in a[stream]] != [r[2] for r in c[stream]], stream
    for rel in json.loads((generated / "truth.json").read_text())["files"]:
        assert (generated / rel).read_bytes() == (again / rel).read_bytes(), rel
    assert (generated / "truth.json").read_text() == (again / "truth.json").read_text()


def test_defect_rate_zero_is_clean(tmp_path):
    out = tmp_path / "clean"
    run_generator(out, 3, "0", "--defect-rate", "0", "--months", "2023-01..2023-06")
    decoded = read_all(out)
    truth = json.loads((out / "truth.json").read_text())
    assert rule_failures(out, decoded) == {"E09": set()}
    assert all(v["count"] == 0 for v in truth["rules"].values())
    assert truth["undecodable"] == [] and truth["older_schema"] == []
    for stream in STREAMS:
        assert truth["duplicates"][stream]["count"] == 0
        assert truth["late_events"][stream]["count"] == 0
        assert len(accepted(decoded[stream])) == len(decoded[stream])
    assert (out / "as_of.txt").read_text().strip() == "2023-06-30T23:59:59.999+08:00"


def test_cli_rejects_bad_months(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "datagen", "--out", str(tmp_path / "x"),
                           "--months", "2023-13"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "--months" in proc.stderr

