"""医保结算清单: institutions upload a list for their direct inpatient and
chronic-outpatient settlements — mostly within days, some after the 30
days I13 allows, some never; a few lists are uploaded again (every list
counts; the earliest upload_time is compared).  A list is not uploaded
before its settlement, and only lists received by as_of are written,
except a few emitted after as_of although received before it.
"""
from __future__ import annotations

from datagen import codes
from datagen import timebase as tb
from datagen.context import Context, new_uuid


def _delay(rng, late_share: float) -> int:
    r = rng.random()
    if r < late_share:
        return rng.randrange(31 * tb.DAY_MS, 120 * tb.DAY_MS)
    if r < 0.6:
        return rng.randrange(tb.HOUR_MS, 5 * tb.DAY_MS)
    return rng.randrange(5 * tb.DAY_MS, 28 * tb.DAY_MS)


def generate(ctx: Context, settlements: list[dict]) -> tuple[list[dict], list[dict]]:
    """(lists, after_as_of entries)."""
    rng = ctx.rng("settlement_list")
    late_share, missing_share = 0.07 * ctx.defect_rate, 0.03 * ctx.defect_rate
    out: list[dict] = []
    after: list[dict] = []
    seen: set[str] = set()
    setl_time: dict[str, int] = {}  # the latest setl_time over a settlement's versions
    for s in settlements:
        setl_time[s["setl_id"]] = max(s["setl_time"], setl_time.get(s["setl_id"], 0))
    for s in settlements:
        sid = s["setl_id"]
        if (s["refd_setl_flag"] != "0" or s["setl_type"] != "2" or not s["_local_fix"]
                or not (s["_cat"] in codes.INPATIENT or s["_cat"] == "14") or sid in seen):
            continue
        seen.add(sid)  # one list per settlement, whatever its versions
        if rng.random() < missing_share:
            continue
        upload = setl_time[sid] + _delay(rng, late_share)
        uploads = [upload]
        if rng.random() < 0.02:  # uploaded again after a fix
            uploads.append(upload + rng.randrange(tb.HOUR_MS, 10 * tb.DAY_MS))
        for up in uploads:
            if up > ctx.as_of:
                break  # not received yet
            event_time = min(up + rng.randrange(1, 300) * 1000, ctx.as_of)
            out.append(_list(rng, s, up, event_time))
    # received before as_of but emitted after it: a run at as_of ignores them
    for rec in rng.sample(out, min(len(out), ctx.scaled(0.0008 * len(out)))):
        rec["event_time"] = ctx.as_of + rng.randrange(tb.MINUTE_MS, 5 * tb.DAY_MS)
        after.append({"setl_id": rec["setl_id"], "event_id": rec["event_id"]})
    return out, after


def _list(rng, s: dict, upload: int, event_time: int) -> dict:
    cat = s["_cat"]
    main = s["dscg_maindiag_code"]
    if cat == "14":
        main = next(c[1] for c in codes.CHRONIC if c[0] == s["dise_codg"])
    diags = [main] + rng.sample(codes.SECONDARY_DIAG, rng.randrange(0, 4))
    oprns: list[str] = []
    if cat in ("26", "28"):
        table = codes.SINGLE_DISEASE if cat == "26" else codes.DAY_SURGERY
        oprns = [next(t[2] for t in table if t[0] == s["dise_codg"])]
    elif cat in codes.INPATIENT and rng.random() < 0.4:
        oprns = rng.sample(codes.PROCEDURES, rng.randrange(1, 3))
    return {"event_id": new_uuid(rng), "event_time": event_time, "setl_id": s["setl_id"],
            "fixmedins_code": s["fixmedins_code"], "upload_time": upload,
            "diag_codes": diags, "oprn_codes": oprns}
