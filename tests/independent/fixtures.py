"""Tiny hand-written Avro fixtures for the oracle's tests (records with sane defaults)."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import fastavro

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = HERE.parent.parent / "schemas"
REGIONS_CSV = HERE.parent.parent / "reference" / "ningxia" / "regions.csv"

UTC = dt.UTC
CST = dt.timezone(dt.timedelta(hours=8))


def utc(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


def cst(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=CST)


def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def schema(stream: str) -> dict:
    with open(SCHEMA_DIR / f"{stream}.avsc", encoding="utf-8") as f:
        return json.load(f)


_seq = [0]


def _eid(prefix: str) -> str:
    _seq[0] += 1
    return f"{prefix}-{_seq[0]:06d}"


def ric(first17: str) -> str:
    """A resident ID with the right ISO 7064 MOD 11-2 check character."""
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(c) * x for c, x in zip(first17, w)) % 11]


def enrolment(**kw) -> dict:
    r = dict(
        event_id=_eid("enr"), event_time=cst("2023-01-10 09:00"), psn_no="P1",
        psn_cert_type="01", certno=ric("64010419800101001"), psn_name="张三", gend="1",
        brdy=d("1980-01-01"), insutype="390", psn_insu_stas="1", insu_admdvs="640104",
        emp_no=None, crt_insu_date=d("2020-01-01"), paus_insu_date=None,
    )
    r.update(kw)
    return r


def contribution(**kw) -> dict:
    r = dict(
        event_id=_eid("ctb"), event_time=cst("2023-01-10 09:00"), psn_no="P1", insutype="390",
        insu_admdvs="640104", accrym_begn="202301", accrym_end="202312", clct_type="10",
        psn_clct_amt=Decimal("380.00"), emp_clct_amt=Decimal("0.00"),
        oth_clct_amt=Decimal("0.00"), clct_time=cst("2023-01-10 09:00"),
        upld_time=cst("2023-01-10 10:00"),
    )
    r.update(kw)
    return r


def settlement(**kw) -> dict:
    """A valid normal inpatient direct settlement at a local hospital of a local insured."""
    z = Decimal("0.00")
    r = dict(
        event_id=_eid("stl"), event_time=cst("2023-01-10 12:00"), setl_id="S1", mdtrt_id="M1",
        psn_no="P1", insutype="390", insu_admdvs="640104", fix_blng_admdvs="640104",
        fixmedins_code="H64010400001", med_type="21", begndate=d("2023-01-05"),
        enddate=d("2023-01-10"), setl_time=cst("2023-01-10 12:00"),
        medfee_sumamt=Decimal("1000.00"), inscp_scp_amt=Decimal("800.00"),
        hifp_pay=Decimal("600.00"), cvlserv_pay=z, hifes_pay=z, hifmi_pay=z, hifob_pay=z,
        hifdm_pay=z, maf_pay=z, oth_pay=z, fund_pay_sumamt=Decimal("600.00"),
        acct_pay=Decimal("100.00"), acct_mulaid_pay=z, psn_cash_pay=Decimal("300.00"),
        hosp_part_amt=z, dscg_maindiag_code="J18.9", dise_codg=None, pay_method="DRG",
        setl_type="2", smart_audit=True, assist_grp="NONE", refd_setl_flag="0",
        init_setl_id=None,
    )
    r.update(kw)
    return r


MONEY = ("medfee_sumamt inscp_scp_amt hifp_pay cvlserv_pay hifes_pay hifmi_pay hifob_pay "
         "hifdm_pay maf_pay oth_pay fund_pay_sumamt acct_pay acct_mulaid_pay psn_cash_pay "
         "hosp_part_amt").split()


def reversal_of(orig: dict, **kw) -> dict:
    r = dict(orig)
    r.update(event_id=_eid("stl"), setl_id=orig["setl_id"] + "-R", refd_setl_flag="1",
             init_setl_id=orig["setl_id"])
    for m in MONEY:
        r[m] = -orig[m]
    r.update(kw)
    return r


def settlement_list(**kw) -> dict:
    """A list; its event_time defaults to its upload_time."""
    r = dict(event_id=_eid("lst"), setl_id="S1", fixmedins_code="H64010400001",
             upload_time=cst("2023-01-11 09:00"), diag_codes=["J18.9"], oprn_codes=[])
    r.update(kw)
    r.setdefault("event_time", r["upload_time"])
    return {k: r[k] for k in ("event_id", "event_time", "setl_id", "fixmedins_code",
                              "upload_time", "diag_codes", "oprn_codes")}


def filing(**kw) -> dict:
    r = dict(event_id=_eid("fil"), event_time=cst("2023-01-10 09:00"), case_id="C1",
             matter_code="MANUAL_REIMB", insu_admdvs="640104", channel="ONLINE",
             cross_province=False, status="COMPLETED", submitted_time=cst("2023-01-10 09:00"),
             completed_time=cst("2023-01-11 09:00"), promised_working_days=5, rating=None)
    r.update(kw)
    return r


INSTITUTIONS = """fixmedins_code,name,admdvs,kind,grade
H64010400001,兴庆区医院,640104,H,3
H64010500001,西夏区医院,640105,H,2
P64010400001,兴庆区药店,640104,P,
"""

POPULATION = "county_code,year,registered_population\n" + "".join(
    f"{c},{y},1000\n"
    for c in ("640104 640105 640106 640121 640122 640181 640202 640205 640221 640302 640303 "
              "640323 640324 640381 640402 640422 640423 640424 640425 640502 640521 "
              "640522").split()
    for y in (2022, 2023, 2024)
)

MATTERS = """matter_code,name,online_capable,statutory_working_days,promised_working_days,region_code
OFFSITE_FILING,异地就医备案,true,5,0,
MANUAL_REIMB,零星报销,true,30,10,
TRANSFER,关系转移接续,false,45,15,
CHRONIC_DISEASE,门诊慢特病认定,true,20,10,
MATERNITY_ALLOWANCE,生育津贴,false,20,10,
ENROL,参保登记,true,0,0,
TRANSFER,关系转移接续,true,45,10,640100
MANUAL_REIMB,零星报销,false,30,5,640104
LOCAL_ONLY,县特色事项,true,10,0,640105
"""


class Fixture:
    """A directory <root>/<stream>/*.avro + <root>/reference/*.csv built record by record."""

    def __init__(self, root, *, matters: str = MATTERS, institutions: str = INSTITUTIONS,
                 population: str = POPULATION):
        self.root = Path(root)
        if self.root.exists():
            shutil.rmtree(self.root)
        ref = self.root / "reference"
        ref.mkdir(parents=True)
        shutil.copy(REGIONS_CSV, ref / "regions.csv")
        (ref / "institutions.csv").write_text(institutions, encoding="utf-8")
        (ref / "population.csv").write_text(population, encoding="utf-8")
        (ref / "matters.csv").write_text(matters, encoding="utf-8")
        self.reference = ref

    def write(self, stream: str, records: list[dict], name: str = "part-000.avro",
              writer_schema: dict | None = None, codec: str = "null",
              sync_interval: int = 16000) -> Path:
        out = self.root / stream
        os.makedirs(out, exist_ok=True)
        path = out / name
        with open(path, "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(writer_schema or schema(stream)), records,
                            codec=codec, sync_interval=sync_interval)
        return path
