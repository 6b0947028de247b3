"""Write planned files: Avro object containers (deflate) with the contract
schemas, and the deliberately damaged ones.

Records hold money as integer cents; the wire value of decimal(16,2) is
the big-endian two's-complement unscaled integer, which fastavro writes
as given (it only converts Decimal objects).  Sync markers come from the
seed and path, so a seed reproduces files byte for byte.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
from pathlib import Path

import fastavro
from fastavro.write import Writer

import schemas
from datagen.amounts import MONEY_FIELDS
from datagen.delivery import FilePlan

CONTRIBUTION_MONEY = ("psn_clct_amt", "emp_clct_amt", "oth_clct_amt")
MONEY = {"settlement": MONEY_FIELDS, "contribution": CONTRIBUTION_MONEY}


def money(cents: int) -> bytes:
    return cents.to_bytes((cents.bit_length() + 8) // 8, "big", signed=True)


def wire(stream: str, records: list[dict]):
    fields = MONEY.get(stream)
    if not fields:
        yield from records
        return
    for rec in records:
        out = rec.copy()
        for f in fields:
            out[f] = money(out[f])
        yield out


def _sync_marker(seed: int, path: str) -> bytes:
    return hashlib.md5(f"{seed}/{path}".encode()).digest()


def _variant_schema(stream: str, drop: str | None = None, retype: tuple | None = None) -> dict:
    raw = copy.deepcopy(schemas.load(stream).avro)
    if drop:
        raw["fields"] = [f for f in raw["fields"] if f["name"] != drop]
    if retype:
        for f in raw["fields"]:
            if f["name"] == retype[0]:
                f["type"] = retype[1]
    return fastavro.parse_schema(raw)


def write(out: Path, seed: int, plan: FilePlan) -> int:
    """Write one file; returns its size in bytes."""
    path = out / plan.path
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = _sync_marker(seed, plan.path)
    if plan.kind == "not_avro":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["psn_no", "insutype", "insu_admdvs", "accrym_begn", "psn_clct_amt"])
        for r in plan.records:
            w.writerow([r["psn_no"], r["insutype"], r["insu_admdvs"], r["accrym_begn"],
                        f"{r['psn_clct_amt'] / 100:.2f}"])
        path.write_text(buf.getvalue(), encoding="utf-8")
        return path.stat().st_size
    if plan.kind == "truncated":
        return _write_truncated(path, plan, marker)
    if plan.kind == "older_schema":
        schema = _variant_schema(plan.stream, drop="init_setl_id")
    elif plan.kind == "incompatible_schema":
        schema = _variant_schema(plan.stream, retype=("promised_working_days", "string"))
    else:
        schema = schemas.load(plan.stream).parsed
    with path.open("wb") as fh:
        fastavro.writer(fh, schema, wire(plan.stream, plan.records), codec="deflate",
                        sync_marker=marker)
    return path.stat().st_size


def _write_truncated(path: Path, plan: FilePlan, marker: bytes) -> int:
    """Blocks of plan.block_size records; the file ends halfway through the
    last block, so only the complete blocks before it can be read."""
    buf = io.BytesIO()
    writer = Writer(buf, schemas.load(plan.stream).parsed, codec="deflate",
                    sync_interval=1 << 40, sync_marker=marker)
    ends = []
    records = list(wire(plan.stream, plan.records))
    for start in range(0, len(records), plan.block_size):
        for rec in records[start:start + plan.block_size]:
            writer.write(rec)
        writer.flush()
        ends.append(buf.tell())
    data = buf.getvalue()
    complete = ends[-2]
    path.write_bytes(data[: complete + (len(data) - complete) // 2])
    return path.stat().st_size
