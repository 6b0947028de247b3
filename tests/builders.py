"""Hand-made records for pipeline tests: each builder returns a record that
passes every rule, so a test changes only what its case is about."""
from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import fastavro

import reference
import schemas

UTC = dt.UTC
_ids = itertools.count(1)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def D(x) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"))


def institution(county: str = "640104") -> str:
    """A listed hospital of a local county; elsewhere a well-formed code."""
    return next((i["fixmedins_code"] for i in reference.load().institutions
                 if i["admdvs"] == county and i["kind"] == "H"), f"H{county}00001")


def settlement(setl_id: str, setl_time: dt.datetime, **over) -> dict:
    day = setl_time.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    rec = {
        "event_id": f"ev-{next(_ids)}", "event_time": setl_time + dt.timedelta(minutes=5),
        "setl_id": setl_id, "mdtrt_id": f"m-{setl_id}", "psn_no": f"P{setl_id}",
        "insutype": "310", "insu_admdvs": "640104", "fix_blng_admdvs": "640104",
        "fixmedins_code": institution(over.get("fix_blng_admdvs", "640104")),
        "med_type": "2101", "begndate": day - dt.timedelta(days=3), "enddate": day,
        "setl_time": setl_time,
        "medfee_sumamt": D(1000), "inscp_scp_amt": D(800), "hifp_pay": D(600), "cvlserv_pay": D(0),
        "hifes_pay": D(0), "hifmi_pay": D(0), "hifob_pay": D(40), "hifdm_pay": D(0), "maf_pay": D(0),
        "oth_pay": D(0), "fund_pay_sumamt": D(640), "acct_pay": D(100), "acct_mulaid_pay": D(0),
        "psn_cash_pay": D(260), "hosp_part_amt": D(0),
        "dscg_maindiag_code": "I10.x00x002", "dise_codg": None, "pay_method": "DRG",
        "setl_type": "2", "smart_audit": True, "assist_grp": "NONE", "refd_setl_flag": "0",
        "init_setl_id": None,
    }
    rec.update(over)
    return rec


MONEY_FIELDS = [f.name for f in schemas.load("settlement").arrow if str(f.type).startswith("decimal")]


def reversal(original: dict, setl_id: str, event_time: dt.datetime, **over) -> dict:
    rec = copy.deepcopy(original)
    rec.update({k: -rec[k] for k in MONEY_FIELDS})
    rec.update(event_id=f"ev-{next(_ids)}", event_time=event_time, setl_id=setl_id,
               refd_setl_flag="1", init_setl_id=original["setl_id"], setl_time=event_time)
    rec.update(over)
    return rec


def write_avro(path: Path, stream: str, records: list[dict], schema: dict | None = None,
               sync_interval: int = 16000) -> Path:
    """An Avro object container file (deflate) of ``records``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parsed = fastavro.parse_schema(schema or schemas.load(stream).avro)
    with path.open("wb") as fh:
        fastavro.writer(fh, parsed, records, codec="deflate", sync_interval=sync_interval)
    return path


def copy_reference(root: Path) -> Path:
    ref = root / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    for name in reference.FILES:
        (ref / name).write_bytes((reference.DEFAULT_DIR / name).read_bytes())
    return ref


def older_schema(stream: str, drop: str) -> dict:
    """The contract without a nullable field (an older compatible writer)."""
    avro = json.loads(json.dumps(schemas.load(stream).avro))
    avro["fields"] = [f for f in avro["fields"] if f["name"] != drop]
    return avro


def resident_id(region6: str, birth: dt.date, seq: int = 1, male: bool = True) -> str:
    from stdnum.cn import ric

    seq3 = seq * 2 + (1 if male else 0)
    body = f"{region6}{birth:%Y%m%d}{seq3 % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")  # it reads the first 17 of 18 characters


def enrolment(psn_no: str, event_time: dt.datetime, **over) -> dict:
    birth = dt.date(1980, 5, 17)
    rec = {
        "event_id": f"ev-{next(_ids)}", "event_time": event_time, "psn_no": psn_no,
        "psn_cert_type": "01", "certno": resident_id("640104", birth, next(_ids)),
        "psn_name": "张三", "gend": "1", "brdy": birth, "insutype": "390", "psn_insu_stas": "1",
        "insu_admdvs": "640104", "emp_no": None, "crt_insu_date": dt.date(2020, 1, 1),
        "paus_insu_date": None,
    }
    rec.update(over)
    return rec


def contribution(clct_time: dt.datetime, upld_time: dt.datetime, **over) -> dict:
    rec = {
        "event_id": f"ev-{next(_ids)}", "event_time": upld_time, "psn_no": f"P{next(_ids)}",
        "insutype": "390", "insu_admdvs": "640104", "accrym_begn": f"{clct_time:%Y%m}",
        "accrym_end": f"{clct_time:%Y%m}", "clct_type": "10", "psn_clct_amt": D(380),
        "emp_clct_amt": D(0), "oth_clct_amt": D(0), "clct_time": clct_time, "upld_time": upld_time,
    }
    rec.update(over)
    return rec


def case(case_id: str, submitted: dt.datetime, completed: dt.datetime | None, **over) -> dict:
    rec = {
        "event_id": f"ev-{next(_ids)}", "event_time": completed or submitted, "case_id": case_id,
        "matter_code": "ENROL", "insu_admdvs": "640104", "channel": "ONLINE",
        "cross_province": False, "status": "COMPLETED" if completed else "ACCEPTED",
        "submitted_time": submitted, "completed_time": completed, "promised_working_days": 0,
        "rating": None,
    }
    rec.update(over)
    return rec


def settlement_list(setl_id: str, upload_time: dt.datetime, **over) -> dict:
    rec = {
        "event_id": f"ev-{next(_ids)}", "event_time": upload_time, "setl_id": setl_id,
        "fixmedins_code": institution(), "upload_time": upload_time,
        "diag_codes": ["I10.x00x002"], "oprn_codes": [],
    }
    rec.update(over)
    return rec


def warehouse_rows(path, query: str, params=()) -> list[tuple]:
    """Rows of a query on a DuckDB warehouse file, opened read-only."""
    from warehouse.duckdb_store import connect

    con = connect(str(path), read_only=True)
    try:
        return con.execute(query, list(params)).fetchall()
    finally:
        con.close()
