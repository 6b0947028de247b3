"""How records reach the landing directory: one file per stream and month
of event_time (Beijing), records in event-time order; duplicate deliveries
(the same event again, in the same file or the next month's); conflicting
duplicates (same event_id, other content, always in a later position so
the original wins by (path, index)); and files a reader must survive:

- settlement/<month>-b.avro, truncated: complete blocks, then a cut block;
- settlement/<month>-legacy.avro, written by an older schema without the
  nullable init_setl_id (read by schema resolution, not rejected);
- filing/<month>-b.avro, written with promised_working_days as a string
  (cannot be resolved to the contract: one dead letter, nothing read);
- contribution/<month>-b.avro, a CSV export that is not Avro at all.

Special files exist only with a positive --defect-rate.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from datagen import timebase as tb
from datagen.context import Context, new_uuid

STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")
DUPLICATE_SHARE = 0.004
CONFLICT_SHARE = 0.0003


@dataclass
class FilePlan:
    path: str  # relative to the output directory
    stream: str
    kind: str = "good"  # good | truncated | older_schema | incompatible_schema | not_avro
    records: list[dict] = field(default_factory=list)
    readable: int | None = None  # records a reader gets back (None: all)
    block_size: int = 0  # truncated files: records per block
    note: str = ""

    @property
    def readable_records(self) -> list[dict]:
        if self.kind in ("incompatible_schema", "not_avro"):
            return []
        return self.records if self.readable is None else self.records[: self.readable]


@dataclass
class Delivery:
    files: list[FilePlan]
    duplicates: dict[str, list[str]]
    conflicts: dict[str, list[dict]]
    lost: dict[str, list[str]]  # business keys only in the cut-off block


def _simple(rec: dict, versions: dict, reversed_ids: set) -> bool:
    """A plain record nothing else refers to: safe to move into a damaged file."""
    return ("_rules" not in rec and "_nodefect" not in rec and "_fix_defect" not in rec
            and "_role" not in rec
            and rec["refd_setl_flag"] == "0" and versions[rec["setl_id"]] == 1
            and rec["setl_id"] not in reversed_ids and rec["_cat"] in ("41", "11", "12", "16"))


def plan(ctx: Context, streams: dict[str, list[dict]]) -> Delivery:
    rng = ctx.rng("delivery")
    files: list[FilePlan] = []
    preassigned: set[int] = set()  # id() of records already placed in a special file
    lost: dict[str, list[str]] = {}
    months = [m.label for m in ctx.months]
    if ctx.defect_rate > 0:
        files += _special_files(ctx, rng, streams, months, preassigned, lost)

    duplicates: dict[str, list[str]] = {}
    conflicts: dict[str, list[dict]] = {}
    for stream in STREAMS:
        records = [r for r in streams[stream] if id(r) not in preassigned]
        by_file: dict[str, list[dict]] = {}
        for rec in records:
            path = f"{stream}/{tb.month_label(rec['event_time'])}.avro"
            rec["_path"] = path
            by_file.setdefault(path, []).append(rec)
        plans = {path: FilePlan(path, stream, records=sorted(
            recs, key=lambda r: (r["event_time"], r["event_id"])))
            for path, recs in sorted(by_file.items())}
        duplicates[stream], conflicts[stream] = _add_copies(ctx, rng, stream, records, plans)
        files += plans.values()
    files.sort(key=lambda f: f.path)
    return Delivery(files, duplicates, conflicts, lost)


def _add_copies(ctx, rng, stream, records, plans) -> tuple[list[str], list[dict]]:
    """Second deliveries, appended to the record's own file or the next
    month's: identical (duplicates) or altered (conflicts).  Either way the
    original sits at a smaller (path, index) and is the copy kept."""
    paths = list(plans)
    extra: dict[str, list[dict]] = {p: [] for p in paths}
    chosen: set[str] = set()
    duplicates, conflicts = [], []
    for kind, share in (("duplicate", DUPLICATE_SHARE), ("conflict", CONFLICT_SHARE)):
        n = ctx.scaled(share * len(records)) if records else 0
        tries = 0
        while n > 0 and tries < 100 * n:
            tries += 1
            rec = records[rng.randrange(len(records))]
            if rec["event_id"] in chosen:
                continue
            chosen.add(rec["event_id"])
            n -= 1
            here = paths.index(rec["_path"])
            target = paths[here + 1] if here + 1 < len(paths) and rng.random() < 0.5 \
                else rec["_path"]
            copy = dict(rec)
            if kind == "duplicate":
                duplicates.append(rec["event_id"])
            else:
                copy["_conflict_change"] = _change(rng, stream, copy)
                conflicts.append({"event_id": rec["event_id"], "copy": copy, "original": rec})
            extra[target].append(copy)
    for path in paths:
        plans[path].records.extend(extra[path])
    return duplicates, conflicts


def _change(rng: random.Random, stream: str, rec: dict) -> str:
    """Alter a conflicting copy's content (it is dead-lettered, whatever it says)."""
    if stream == "enrolment":
        rec["psn_insu_stas"] = "4" if rec["psn_insu_stas"] != "4" else "1"
        return "psn_insu_stas"
    if stream == "contribution":
        rec["psn_clct_amt"] += 10_000
        return "psn_clct_amt"
    if stream == "settlement":
        rec["medfee_sumamt"] += 10_000
        rec["psn_cash_pay"] += 10_000
        return "medfee_sumamt, psn_cash_pay"
    if stream == "settlement_list":
        rec["upload_time"] -= tb.DAY_MS
        return "upload_time"
    rec["channel"] = "WINDOW" if rec["channel"] != "WINDOW" else "ONLINE"
    return "channel"


def _special_files(ctx, rng, streams, months, preassigned, lost) -> list[FilePlan]:
    out = []
    settlements = streams["settlement"]
    versions: dict[str, int] = {}
    for r in settlements:
        versions[r["setl_id"]] = versions.get(r["setl_id"], 0) + 1
    reversed_ids = {r["init_setl_id"] for r in settlements if r["init_setl_id"]}

    # truncated: four complete blocks, then a block cut in the middle
    month = months[len(months) // 2]
    cands = [r for r in settlements if tb.month_label(r["event_time"]) == month
             and _simple(r, versions, reversed_ids)]
    block = max(5, min(200, len(cands) // 10))
    if len(cands) >= 5 * block:
        picked = rng.sample(cands, 5 * block)
        picked.sort(key=lambda r: (r["event_time"], r["event_id"]))
        preassigned.update(id(r) for r in picked)
        out.append(FilePlan(f"settlement/{month}-b.avro", "settlement", "truncated", picked,
                            readable=4 * block, block_size=block,
                            note="last block cut in the middle"))
        lost["settlement"] = [r["setl_id"] for r in picked[4 * block:]]
        cut = {id(r) for r in picked[4 * block:]}
        streams["settlement"] = [r for r in settlements if id(r) not in cut]

    # an older writer schema without init_setl_id (normal settlements only)
    month = months[min(1, len(months) - 1)]
    cands = [r for r in streams["settlement"] if tb.month_label(r["event_time"]) == month
             and r["refd_setl_flag"] == "0" and r["init_setl_id"] is None
             and id(r) not in preassigned]
    picked = sorted(rng.sample(cands, min(len(cands) // 5, 3000)),
                    key=lambda r: (r["event_time"], r["event_id"]))
    if picked:
        preassigned.update(id(r) for r in picked)
        out.append(FilePlan(f"settlement/{month}-legacy.avro", "settlement", "older_schema",
                            picked, note="writer schema without init_setl_id"))

    # an incompatible writer schema: promised_working_days written as a string
    month = months[-2] if len(months) > 1 else months[-1]
    templates = [r for r in streams["filing"] if tb.month_label(r["event_time"]) == month]
    recs = []
    for t in rng.sample(templates, min(40, len(templates))):
        day = tb.ymd(tb.day_of(t["submitted_time"]))
        recs.append(dict(t, event_id=new_uuid(rng),
                         promised_working_days=str(t["promised_working_days"]),
                         case_id=f"{t['insu_admdvs']}{day}{ctx.next_id('case'):07d}"))
    if recs:
        out.append(FilePlan(f"filing/{month}-b.avro", "filing", "incompatible_schema", recs,
                            note="promised_working_days is a string"))

    # not Avro at all: a CSV export dropped into the folder
    month = months[len(months) // 3]
    people = [r for r in streams["contribution"] if tb.month_label(r["event_time"]) == month]
    rows = rng.sample(people, min(20, len(people)))
    out.append(FilePlan(f"contribution/{month}-b.avro", "contribution", "not_avro", rows,
                        note="a CSV export named .avro"))
    return out
