"""Versions of settlements: reversals (with re-settlements, some reversals
delivered after the re-settlement), corrections, versions emitted after
as_of, and boundary cases that must pass the rules.

Every count here scales with --defect-rate (0 gives none).  Each chosen
settlement takes part in one kind only, so truth.json can name it.
"""
from __future__ import annotations

import random

from datagen import amounts
from datagen import timebase as tb
from datagen.context import new_uuid
from datagen.settlement import SettlementGenerator

CORRECTION_KINDS = (("amounts", 30), ("insu_move", 18), ("fix_move", 14),
                    ("setl_time_shift", 10), ("fix_defect", 22), ("tie", 6))


def _small_delay(rng: random.Random) -> int:
    return rng.randrange(1, 300) * 1000


class _Picker:
    """Draws distinct settlements (by setl_id) not yet used by another kind."""

    def __init__(self, rng: random.Random, records: list[dict]) -> None:
        self.rng, self.records, self.taken = rng, records, set()

    def draw(self, n: int, accept) -> list[dict]:
        out: list[dict] = []
        tries = 0
        while len(out) < n and tries < 50 * n + 100:
            tries += 1
            rec = self.records[self.rng.randrange(len(self.records))]
            if rec["setl_id"] in self.taken or not accept(rec):
                continue
            self.taken.add(rec["setl_id"])
            out.append(rec)
        return out


def _resplit(gen: SettlementGenerator, rec: dict, factor: float) -> dict[str, int]:
    return amounts.split(gen.rng, rec["_cat"], rec["insutype"], rec["_person"],
                         max(100, int(rec["medfee_sumamt"] * factor)), not rec["_local_fix"])


def add_versions(gen: SettlementGenerator) -> None:
    ctx, rng = gen.ctx, gen.rng
    base = list(gen.records)
    n = len(base)
    picker = _Picker(rng, base)
    as_of = ctx.as_of
    normal = lambda r: r["refd_setl_flag"] == "0"  # noqa: E731

    # reversals: a new setl_id with negated amounts naming the original
    for orig in picker.draw(ctx.scaled(0.008 * n), lambda r: normal(r) and r["setl_type"] == "2"
                            and r["setl_time"] + 6 * tb.DAY_MS < as_of):
        rev_time = orig["setl_time"] + rng.randrange(10 * tb.MINUTE_MS, 3 * tb.DAY_MS)
        rev = dict(orig, event_id=new_uuid(rng), setl_id=gen._setl_id(orig["fix_blng_admdvs"],
                                                                      rev_time),
                   refd_setl_flag="1", init_setl_id=orig["setl_id"], setl_time=rev_time,
                   event_time=rev_time + _small_delay(rng))
        for f in amounts.MONEY_FIELDS:
            rev[f] = -orig[f]
        entry = {"setl_id": rev["setl_id"], "init_setl_id": orig["setl_id"],
                 "resettled_as": None, "arrives_after_resettlement": False}
        if rng.random() < 0.6:  # settled again, correctly, under a new setl_id
            again_time = rev_time + rng.randrange(10 * tb.MINUTE_MS, 2 * tb.DAY_MS)
            again = dict(orig, event_id=new_uuid(rng), setl_time=again_time,
                         setl_id=gen._setl_id(orig["fix_blng_admdvs"], again_time),
                         event_time=again_time + _small_delay(rng), _role="resettlement")
            again.update(_resplit(gen, orig, rng.uniform(0.85, 1.0)))
            gen.records.append(again)
            entry["resettled_as"] = again["setl_id"]
            if rng.random() < 0.35:  # the reversal reaches the platform after it
                rev["event_time"] = again["event_time"] + rng.randrange(tb.HOUR_MS,
                                                                        40 * tb.HOUR_MS)
                entry["arrives_after_resettlement"] = True
        gen.records.append(rev)
        gen.reversals.append(entry)

    # corrections: a newer version of the same setl_id
    kinds, weights = zip(*CORRECTION_KINDS)
    for old in picker.draw(ctx.scaled(0.004 * n), lambda r: normal(r)
                           and r["event_time"] + 11 * tb.DAY_MS < as_of):
        kind = rng.choices(kinds, weights=weights)[0]
        if kind == "insu_move" and old["insu_admdvs"] not in ctx.counties:
            kind = "amounts"
        if kind == "fix_move" and old["fix_blng_admdvs"] not in ctx.counties:
            kind = "amounts"
        new = dict(old, event_id=new_uuid(rng),
                   event_time=old["event_time"] + rng.randrange(tb.HOUR_MS, 10 * tb.DAY_MS))
        entry = {"setl_id": old["setl_id"], "kind": kind}
        if kind == "amounts":
            new.update(_resplit(gen, old, rng.uniform(0.9, 0.99)))
        elif kind == "insu_move":
            new["insu_admdvs"] = rng.choice([c for c in ctx.counties if c != old["insu_admdvs"]])
            entry["from"], entry["to"] = old["insu_admdvs"], new["insu_admdvs"]
        elif kind == "fix_move":
            county = rng.choice([c for c in ctx.counties if c != old["fix_blng_admdvs"]])
            code = (rng.choice(gen.inst.pharmacies[county]) if old["fixmedins_code"][0] == "P"
                    else rng.choice(gen.inst.primary[county]))
            new["fixmedins_code"], new["fix_blng_admdvs"] = code, gen.inst.fix_admdvs[code]
            entry["from"], entry["to"] = old["fix_blng_admdvs"], new["fix_blng_admdvs"]
        elif kind == "setl_time_shift":  # e.g. across a month end: both months change
            new["setl_time"] = old["setl_time"] + rng.randrange(1, 4) * tb.DAY_MS
            new["event_time"] = max(new["event_time"], new["setl_time"] + _small_delay(rng))
        elif kind == "fix_defect":  # the old version carries a defect (defects.py)
            old["_fix_defect"] = True
            new["_nodefect"] = True
        elif kind == "tie":  # same event_time: the greater event_id wins
            new["event_time"] = old["event_time"]
            new.update(_resplit(gen, old, rng.uniform(0.9, 0.99)))
            if new["event_id"] < old["event_id"]:
                new["event_id"], old["event_id"] = old["event_id"], new["event_id"]
        if new["event_time"] > as_of or (kind == "setl_time_shift" and new["setl_time"] > as_of):
            continue
        gen.records.append(new)
        gen.corrections.append(entry)

    # versions emitted after as_of: ignored by a run at as_of
    for old in picker.draw(ctx.scaled(0.0002 * n), normal):
        new = dict(old, event_id=new_uuid(rng),
                   event_time=as_of + rng.randrange(tb.HOUR_MS, 10 * tb.DAY_MS))
        new.update(_resplit(gen, old, 0.95))
        gen.records.append(new)
        gen.after_as_of.append({"setl_id": old["setl_id"], "event_id": new["event_id"]})

    _boundary_cases(gen, picker)


def _boundary_cases(gen: SettlementGenerator, picker: _Picker) -> None:
    """Clean records on the edges of T04/T05's ± 0.01 and of T07's business
    date (a settlement before 08:00 Beijing, i.e. the previous UTC day)."""
    ctx, rng = gen.ctx, gen.rng
    k = ctx.scaled(0.00002 * len(picker.records))
    normal = lambda r: r["refd_setl_flag"] == "0"  # noqa: E731
    for rec in picker.draw(k, normal):
        rec["medfee_sumamt"] += 1  # parts now sum to medfee - 0.01
        rec["_nodefect"] = True
        gen.edges.setdefault("t04_off_by_0.01", []).append(rec["setl_id"])
    for rec in picker.draw(k, normal):
        rec["hifp_pay"] += 1  # funds now sum to fund_pay_sumamt + 0.01
        rec["_nodefect"] = True
        gen.edges.setdefault("t05_off_by_0.01", []).append(rec["setl_id"])
    for rec in picker.draw(k, lambda r: normal(r) and r["begndate"] == r["enddate"]
                           and r["setl_type"] == "2"):
        rec["setl_time"] = tb.at(rec["enddate"], rng.randrange(300, 7 * 3600 + 3000))
        rec["event_time"] = rec["setl_time"] + _small_delay(rng)
        rec["_nodefect"] = True
        gen.edges.setdefault("t07_settled_before_0800_beijing", []).append(rec["setl_id"])
