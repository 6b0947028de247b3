"""The contract schemas survive a fastavro round trip with every kind of
value they carry: decimals (signs, 16 digits), millisecond UTC instants,
dates, nulls and their non-null branch, arrays, booleans; and schema
evolution works the way DATA_CONTRACT.md says."""
from __future__ import annotations

import copy
import datetime as dt
import io
from decimal import Decimal

import fastavro
import pyarrow as pa
import pytest

import schemas

UTC = dt.UTC
T0 = dt.datetime(2023, 12, 31, 15, 59, 59, 999_000, tzinfo=UTC)  # 23:59:59.999 Beijing
T1 = dt.datetime(1999, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
MAX_MONEY = Decimal("99999999999999.99")  # 16 digits

SAMPLES = {
    "enrolment": [
        {"event_id": "e1", "event_time": T0, "psn_no": "6400000000000001",
         "psn_cert_type": "01", "certno": "11010519491231002X", "psn_name": "阿依古丽·买买提",
         "gend": "2", "brdy": dt.date(1949, 12, 31), "insutype": "310", "psn_insu_stas": "1",
         "insu_admdvs": "640100", "emp_no": "64010000000123", "crt_insu_date": dt.date(2001, 3, 1),
         "paus_insu_date": None},
        {"event_id": "e2", "event_time": T1, "psn_no": "p2", "psn_cert_type": "17",
         "certno": "", "psn_name": " 王\u3000", "gend": "9", "brdy": dt.date(1900, 1, 1),
         "insutype": "390", "psn_insu_stas": "4", "insu_admdvs": "640000", "emp_no": None,
         "crt_insu_date": dt.date(1970, 1, 1), "paus_insu_date": dt.date(2023, 2, 28)},
    ],
    "contribution": [
        {"event_id": "c1", "event_time": T0, "psn_no": "p", "insutype": "310",
         "insu_admdvs": "640104", "accrym_begn": "202301", "accrym_end": "202303",
         "clct_type": "31", "psn_clct_amt": Decimal("123.45"), "emp_clct_amt": Decimal("0.00"),
         "oth_clct_amt": Decimal("-0.01"), "clct_time": T1, "upld_time": T0},
    ],
    "settlement": [
        {"event_id": "s1", "event_time": T0, "setl_id": "S1", "mdtrt_id": "M1", "psn_no": "p",
         "insutype": "390", "insu_admdvs": "610102", "fix_blng_admdvs": "640104",
         "fixmedins_code": "H64010400001", "med_type": "140104",
         "begndate": dt.date(2023, 12, 1), "enddate": dt.date(2023, 12, 31), "setl_time": T0,
         **{f: Decimal(v) for f, v in (
             ("medfee_sumamt", MAX_MONEY), ("inscp_scp_amt", "-99999999999999.99"),
             ("hifp_pay", "0.01"), ("cvlserv_pay", "-0.01"), ("hifes_pay", "0.00"),
             ("hifmi_pay", "1.10"), ("hifob_pay", "128.00"), ("hifdm_pay", "-128.00"),
             ("maf_pay", "255.99"), ("oth_pay", "256.00"), ("fund_pay_sumamt", "32767.99"),
             ("acct_pay", "-32768.00"), ("acct_mulaid_pay", "8388607.99"),
             ("psn_cash_pay", "-8388608.00"), ("hosp_part_amt", "1.00"))},
         "dscg_maindiag_code": "I10.x00x002", "dise_codg": None, "pay_method": "DRG",
         "setl_type": "2", "smart_audit": True, "assist_grp": "TEKUN", "refd_setl_flag": "1",
         "init_setl_id": "S0"},
    ],
    "settlement_list": [
        {"event_id": "l1", "event_time": T0, "setl_id": "S1", "fixmedins_code": "H64010400001",
         "upload_time": T1, "diag_codes": ["I10.x00x002", "E11.900"], "oprn_codes": []},
        {"event_id": "l2", "event_time": T0, "setl_id": "S2", "fixmedins_code": "P64010400001",
         "upload_time": T0, "diag_codes": [], "oprn_codes": ["47.0100"]},
    ],
    "filing": [
        {"event_id": "f1", "event_time": T0, "case_id": "C1", "matter_code": "OFFSITE_FILING",
         "insu_admdvs": "640104", "channel": "MOBILE", "cross_province": True,
         "status": "COMPLETED", "submitted_time": T1, "completed_time": T0,
         "promised_working_days": 0, "rating": 5},
        {"event_id": "f2", "event_time": T1, "case_id": "C2", "matter_code": "TRANSFER",
         "insu_admdvs": "640000", "channel": "WINDOW", "cross_province": False,
         "status": "SUBMITTED", "submitted_time": T1, "completed_time": None,
         "promised_working_days": 15, "rating": None},
    ],
}


def roundtrip(schema, records, reader_schema=None) -> list[dict]:
    buf = io.BytesIO()
    fastavro.writer(buf, schema, records, codec="deflate")
    buf.seek(0)
    return list(fastavro.reader(buf, reader_schema=reader_schema))


@pytest.mark.parametrize("stream", schemas.STREAM_NAMES)
def test_roundtrip(stream):
    s = schemas.load(stream)
    records = SAMPLES[stream]
    assert [set(r) for r in records] == [set(s.field_names)] * len(records)
    assert roundtrip(s.parsed, records) == records


@pytest.mark.parametrize("stream", schemas.STREAM_NAMES)
def test_arrow_schema_matches_avro(stream):
    s = schemas.load(stream)
    assert s.arrow.names == s.field_names
    for f in s.avro["fields"]:
        typ = s.arrow.field(f["name"]).type
        text = str(f["type"])
        if "decimal" in text:
            assert typ == pa.decimal128(16, 2)
        elif "timestamp-millis" in text:
            assert typ == pa.timestamp("ms", tz="UTC")
        elif "'date'" in text:
            assert typ == pa.date32()
        assert s.arrow.field(f["name"]).nullable == isinstance(f["type"], list)
    assert len(s.fingerprint) == 16 and int(s.fingerprint, 16) >= 0


def test_record_names_and_keys():
    names = {s: schemas.load(s).avro["name"] for s in schemas.STREAM_NAMES}
    assert names == {"enrolment": "Enrolment", "contribution": "Contribution",
                     "settlement": "Settlement", "settlement_list": "SettlementList",
                     "filing": "Filing"}
    assert all(schemas.load(s).avro["namespace"] == "yibao" for s in schemas.STREAM_NAMES)
    assert schemas.load("enrolment").business_key == ("psn_no", "insutype")
    assert schemas.load("settlement").business_key == ("setl_id",)
    assert schemas.load("filing").business_key == ("case_id",)


def test_decimal_beyond_precision_is_refused():
    s = schemas.load("contribution")
    rec = dict(SAMPLES["contribution"][0], psn_clct_amt=Decimal("999999999999999.99"))
    with pytest.raises(ValueError):
        roundtrip(s.parsed, [rec])


def test_older_writer_without_nullable_field_is_resolved():
    s = schemas.load("settlement")
    older = copy.deepcopy(s.avro)
    older["fields"] = [f for f in older["fields"] if f["name"] != "init_setl_id"]
    rec = {k: v for k, v in SAMPLES["settlement"][0].items() if k != "init_setl_id"}
    (back,) = roundtrip(fastavro.parse_schema(older), [rec], reader_schema=s.parsed)
    assert back == dict(rec, init_setl_id=None)


def test_incompatible_writer_is_refused():
    s = schemas.load("filing")
    changed = copy.deepcopy(s.avro)
    for f in changed["fields"]:
        if f["name"] == "promised_working_days":
            f["type"] = "string"
    rec = dict(SAMPLES["filing"][0], promised_working_days="0")
    with pytest.raises(fastavro.read.SchemaResolutionError):
        roundtrip(fastavro.parse_schema(changed), [rec], reader_schema=s.parsed)
