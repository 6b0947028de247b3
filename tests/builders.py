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
    return next(i["fixmedins_code"] for i in reference.load().institutions
                if i["admdvs"] == county and i["kind"] == "H")


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
