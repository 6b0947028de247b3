"""Rule violations of QUALITY_RULES.md, injected at known rates.

Each injected defect breaks exactly one rule: where changing one field
would break another rule too, the change is compensated (T03 moves the
amount to psn_cash_pay so T04 still holds; F01's bad status drops
completed_time so F02 still holds) or chosen so that the other rule does
not apply (E01 defects leave gend/brdy alone: E03/E04 only apply to IDs
that pass E01).  Defects go into the version that is the latest at as_of
— except the old version of a "fix_defect" correction, which a newer
clean version supersedes.  Each defective key gets one rule (E09, a
relation between records, takes a pair).  Records carry the rules they
break in ``_rules``; truth.py lists the keys whose latest version does.
"""
from __future__ import annotations

from datagen import codes, identity
from datagen import timebase as tb
from datagen.context import Context, new_uuid

# Share of a stream's business keys (latest versions) given each defect.
RATES = {
    "E01": 0.0015, "E02": 0.001, "E03": 0.001, "E04": 0.001, "E05": 0.0005,
    "E06": 0.0005, "E07": 0.001, "E08": 0.001, "E09": 0.0005,
    "T01": 0.0008, "T02": 0.0006, "T03": 0.0005, "T04": 0.0008, "T05": 0.0008,
    "T06": 0.0005, "T07": 0.0006, "T08": 0.0008, "T09": 0.0005,
    "F01": 0.002, "F02": 0.002, "F03": 0.002, "F04": 0.002,
}
STREAM_OF = {"E": "enrolment", "T": "settlement", "F": "filing"}


def business_key(stream: str, rec: dict):
    if stream == "enrolment":
        return (rec["psn_no"], rec["insutype"])
    return rec["setl_id"] if stream == "settlement" else rec["case_id"]


def latest_versions(stream: str, records: list[dict], as_of: int) -> dict:
    """Business key -> its latest record with event_time <= as_of."""
    best: dict = {}
    for rec in records:
        if rec["event_time"] > as_of:
            continue
        key = business_key(stream, rec)
        cur = best.get(key)
        if cur is None or (rec["event_time"], rec["event_id"]) > (cur["event_time"],
                                                                  cur["event_id"]):
            best[key] = rec
    return best


def _tag(rec: dict, rule: str, variant: str) -> None:
    rec["_rules"] = (rule,)
    rec["_variant"] = variant


# -- enrolment ----------------------------------------------------------------
def _valid_id(rec: dict) -> bool:
    """IDs the generator made are valid; only defects make them invalid."""
    return rec["psn_cert_type"] == "01" and "_rules" not in rec


def e01(rng, rec, ctx) -> str | None:
    if rec["psn_cert_type"] != "01":
        return None
    c = rec["certno"]
    variant = rng.choice(("check", "short", "long", "lower_x", "bad_date", "future",
                          "province", "pre1900", "letter"))
    year = c[6:10]
    if variant == "check":
        new = c[:17] + rng.choice([ch for ch in "0123456789X" if ch != c[17]])
    elif variant == "short":
        new = c[:17]
    elif variant == "long":
        new = c + str(rng.randrange(10))
    elif variant == "lower_x":
        new = c[:17] + "x"
    elif variant == "letter":
        k = rng.randrange(6, 17)
        new = c[:k] + rng.choice("OIl") + c[k + 1:]
    else:
        if variant == "bad_date":
            body = c[:6] + year + rng.choice(("0230", "0431", "1301", "0000", "0932")) + c[14:17]
        elif variant == "future":
            day = tb.day_of(rec["event_time"]) + rng.randrange(1, 400)
            body = c[:6] + tb.ymd(day) + c[14:17]
        elif variant == "province":
            body = rng.choice(("99", "00", "70", "66", "24")) + c[2:17]
        else:  # pre1900
            body = c[:6] + "1899" + c[10:17]
        new = body + identity.check_char(body)
    rec["certno"] = new
    return variant


BAD_NAMES = (
    ("ascii_digit", lambda n: n + "2"), ("fullwidth_digit", lambda n: n[0] + "４" + n[1:]),
    ("arabic_indic_digit", lambda n: n + "\u0663"), ("leading_space", lambda n: " " + n),
    ("trailing_ideographic_space", lambda n: n + "\u3000"),
    ("trailing_nbsp", lambda n: n + "\u00a0"), ("one_char", lambda n: n[0]),
    ("too_long", lambda n: (n * 31)[:31]),
)


def e02(rng, rec, ctx) -> str:
    variant, bad = rng.choice(BAD_NAMES)
    rec["psn_name"] = bad(rec["psn_name"])
    return variant


def e03(rng, rec, ctx) -> str | None:
    if _valid_id(rec):
        variant = rng.choice(("unknown_0", "unspecified_9", "opposite", "not_in_code_set"))
    else:
        variant = "not_in_code_set"
    rec["gend"] = {"unknown_0": "0", "unspecified_9": "9",
                   "opposite": "2" if rec["gend"] == "1" else "1"}.get(
        variant, rng.choice(("3", "M", "")))
    return variant


def e04(rng, rec, ctx) -> str | None:
    if not _valid_id(rec):
        return None
    rec["brdy"] = rec["brdy"] + rng.choice((-1, 1)) * rng.randrange(1, 400)
    return "brdy_differs_from_id"


def e05(rng, rec, ctx) -> str:
    variant = rng.choice(("insutype", "psn_insu_stas", "psn_cert_type"))
    if variant == "insutype":
        rec["insutype"] = rng.choice(("311", "300", "3100"))  # a new, single-version key
    elif variant == "psn_insu_stas":
        rec["psn_insu_stas"] = rng.choice(("3", "9", "01"))
    else:
        rec["psn_cert_type"] = rng.choice(("00", "18", "1", "91"))
    return variant


def e06(rng, rec, ctx) -> str:
    rec["insu_admdvs"] = rng.choice(("640199", "642221", "610102", "", "64010"))
    return "insu_admdvs=" + rec["insu_admdvs"]


def e07(rng, rec, ctx) -> str:
    if rng.random() < 0.5:
        rec["paus_insu_date"] = rec["crt_insu_date"] - rng.randrange(1, 300)
        return "paused_before_created"
    rec["crt_insu_date"] = tb.day_of(rec["event_time"]) + rng.randrange(1, 60)
    return "created_after_event"


def e08(rng, rec, ctx) -> str | None:
    if rec["insutype"] != "310":
        return None
    rec["emp_no"] = rng.choice((None, "", "   "))
    return "emp_no=" + repr(rec["emp_no"])


# -- settlement ------------------------------------------------------------------
def _local(ctx: Context, code: str) -> bool:
    return code in ctx.local_codes


def t01(rng, rec, ctx) -> str:
    code = rec["fixmedins_code"]
    variants = ["eleven_digits_short", "twelve_digits", "lowercase", "other_letter"]
    if _local(ctx, rec["fix_blng_admdvs"]) and rec["fix_blng_admdvs"] != ctx.province:
        variants += ["not_in_institutions"] * 2
    variant = rng.choice(variants)
    if variant == "eleven_digits_short":
        rec["fixmedins_code"] = code[:-1]
    elif variant == "twelve_digits":
        rec["fixmedins_code"] = code + "0"
    elif variant == "lowercase":
        rec["fixmedins_code"] = code[0].lower() + code[1:]
    elif variant == "other_letter":
        rec["fixmedins_code"] = "Y" + code[1:]
    else:
        while True:
            new = f"{code[0]}{rec['fix_blng_admdvs']}{rng.randrange(90000, 100000):05d}"
            if new not in ctx.institution_codes:
                break
        rec["fixmedins_code"] = new
    return variant


def t02(rng, rec, ctx) -> str:
    field, bad = rng.choice((
        ("med_type", ("1", "1234567", "31", "99", "A1")), ("insutype", ("311", "")),
        ("setl_type", ("4", "0")), ("refd_setl_flag", ("2",)),
        ("pay_method", ("DRGS", "drg", "FEE")), ("assist_grp", ("WUBAO", "")),
    ))
    if field == "refd_setl_flag" and rec["refd_setl_flag"] != "0":
        field, bad = "pay_method", ("DRGS",)
    rec[field] = rng.choice(bad)
    return f"{field}={rec[field]}"


def _sign(rec) -> int:
    return -1 if rec["refd_setl_flag"] == "1" else 1


def t03(rng, rec, ctx) -> str:
    wrong = -rng.randrange(1, 5000) * _sign(rec)  # the sign the record kind forbids ...
    rec["psn_cash_pay"] += rec["hosp_part_amt"] - wrong  # ... compensated: T04 still holds
    rec["hosp_part_amt"] = wrong
    return "hosp_part_amt_wrong_sign"


def t04(rng, rec, ctx) -> str:
    rec["medfee_sumamt"] += rng.randrange(2, 50_000) * _sign(rec)
    return "medfee_exceeds_parts"


def t05(rng, rec, ctx) -> str:
    rec["hifp_pay"] += rng.randrange(2, 50_000) * _sign(rec)
    return "funds_exceed_fund_pay_sumamt"


def t06(rng, rec, ctx) -> str:
    rec["inscp_scp_amt"] = rec["medfee_sumamt"] + rng.randrange(1, 20_000) * _sign(rec)
    return "scope_exceeds_total"


def t07(rng, rec, ctx) -> str:
    if rng.random() < 0.5:
        rec["begndate"] = rec["enddate"] + rng.randrange(1, 4)
        return "begndate_after_enddate"
    rec["enddate"] = tb.day_of(rec["setl_time"]) + rng.randrange(1, 6)
    return "enddate_after_settlement"


def t08(rng, rec, ctx) -> str | None:
    if rec["_cat"] not in codes.INPATIENT:
        return None
    rec["dscg_maindiag_code"] = rng.choice(codes.BAD_DIAG)
    return "dscg_maindiag_code=" + repr(rec["dscg_maindiag_code"])


def t09(rng, rec, ctx) -> str:
    insu_local, fix_local = _local(ctx, rec["insu_admdvs"]), _local(ctx, rec["fix_blng_admdvs"])
    variant = rng.choice(("insu_invalid", "fix_invalid", "neither_local"))
    if variant == "insu_invalid":
        rec["insu_admdvs"] = rng.choice(("640199", "642221", "999999", ""))
    elif variant == "fix_invalid":
        rec["fix_blng_admdvs"] = rng.choice(("640199", "000000", "640000"))
    else:
        if insu_local:
            rec["insu_admdvs"] = rng.choice(("610102", "620102"))
        if fix_local or rec["fix_blng_admdvs"][:2] == rec["insu_admdvs"][:2]:
            rec["fix_blng_admdvs"] = "610113" if rec["insu_admdvs"][:2] != "61" else "620102"
    return variant


# -- filing --------------------------------------------------------------------------
def f01(rng, rec, ctx) -> str:
    if rng.random() < 0.5:
        rec["status"] = rng.choice(("DONE", "PENDING", "CLOSED", "completed"))
        rec["completed_time"] = None  # keeps F02 (status ⇔ completed_time) satisfied
        return "status=" + rec["status"]
    rec["channel"] = rng.choice(("WECHAT", "EMAIL", "APP", "online", ""))
    return "channel=" + rec["channel"]


def f02(rng, rec, ctx) -> str:
    if rec["status"] in ("COMPLETED", "REJECTED"):
        if rng.random() < 0.5:
            rec["completed_time"] = None
            return "closed_without_completed_time"
        rec["completed_time"] = rec["submitted_time"] - rng.randrange(tb.MINUTE_MS, 2 * tb.DAY_MS)
        return "completed_before_submitted"
    # between submission and the event, so the event is not earlier than its business time
    rec["completed_time"] = rec["submitted_time"] + rng.randrange(
        max(1, rec["event_time"] - rec["submitted_time"]))
    return "open_with_completed_time"


def f03(rng, rec, ctx) -> str:
    if rec["insu_admdvs"] not in ctx.ltc_regions and rng.random() < 0.4:
        rec["matter_code"] = "LTC_ASSESS"  # a 石嘴山-only matter elsewhere
        return "matter_not_applicable_here"
    rec["matter_code"] = rng.choice(("UNKNOWN_MATTER", "ENROL_X", "offsite_filing"))
    return "matter_code=" + rec["matter_code"]


def f04(rng, rec, ctx) -> str:
    rec["rating"] = rng.choice((0, 6, 7, 10, -1))
    return f"rating={rec['rating']}"


INJECT = {"E01": e01, "E02": e02, "E03": e03, "E04": e04, "E05": e05, "E06": e06,
          "E07": e07, "E08": e08, "T01": t01, "T02": t02, "T03": t03, "T04": t04,
          "T05": t05, "T06": t06, "T07": t07, "T08": t08, "T09": t09,
          "F01": f01, "F02": f02, "F03": f03, "F04": f04}
# Rules a superseded version may break (E05 could change its key, E09 needs a pair).
SUPERSEDED = {"enrolment": ("E01", "E02", "E03", "E04", "E06", "E07", "E08"),
              "settlement": ("T01", "T02", "T03", "T04", "T05", "T06", "T07", "T08", "T09")}


def inject(ctx: Context, streams: dict[str, list[dict]]) -> None:
    rng = ctx.rng("defects")
    for prefix, stream in STREAM_OF.items():
        records = streams[stream]
        latest = latest_versions(stream, records, ctx.as_of)
        keys = list(latest)
        version_count: dict = {}
        for rec in records:
            k = business_key(stream, rec)
            version_count[k] = version_count.get(k, 0) + 1
        used: set = set()
        for rule in sorted(r for r in RATES if r.startswith(prefix)):
            n = ctx.scaled(RATES[rule] * len(keys))
            if rule == "E09":
                _duplicate_enrolments(rng, ctx, records, latest, keys, used, version_count, n)
                continue
            done = tries = 0
            while done < n and tries < 200 * n:
                tries += 1
                key = keys[rng.randrange(len(keys))]
                rec = latest[key]
                if key in used or "_nodefect" in rec or "_rules" in rec:
                    continue
                if rule == "E05" and version_count[key] > 1:
                    continue  # E05 may change insutype, i.e. the key: single versions only
                variant = INJECT[rule](rng, rec, ctx)
                if variant is None:
                    continue
                _tag(rec, rule, variant)
                used.add(key)
                done += 1
        # the superseded version of a fix_defect correction
        for rec in records:
            if rec.get("_fix_defect"):
                for _ in range(20):
                    rule = rng.choice(SUPERSEDED[stream])
                    variant = INJECT[rule](rng, rec, ctx)
                    if variant:
                        _tag(rec, rule, variant)
                        break


def _duplicate_enrolments(rng, ctx, records, latest, keys, used, version_count, n) -> None:
    """E09 (重复参保): an active 390 for an active 310 person (or the other
    way round), under the same psn_no or a second one, maybe elsewhere."""
    has_key = set(latest)
    done = tries = 0
    while done < n and tries < 200 * n:
        tries += 1
        key = keys[rng.randrange(len(keys))]
        rec = latest[key]
        if (key in used or "_rules" in rec or "_nodefect" in rec or rec["psn_insu_stas"] != "1"
                or rec["insutype"] not in ("310", "390") or rec["psn_cert_type"] != "01"):
            continue
        other = "390" if rec["insutype"] == "310" else "310"
        same_psn = rng.random() < 0.5
        psn_no = rec["psn_no"] if same_psn else f"64000{90_000_000_000 + ctx.next_id('psn2'):011d}"
        if (psn_no, other) in has_key:
            continue
        lo = max(ctx.first_day, rec["brdy"], rec["crt_insu_date"]) + 1
        if lo > ctx.last_day - 1:
            continue
        day = rng.randrange(lo, ctx.last_day)
        admdvs = rng.choice(ctx.counties)
        dup = dict(rec, event_id=new_uuid(rng), psn_no=psn_no, insutype=other,
                   insu_admdvs=admdvs, crt_insu_date=day, paus_insu_date=None,
                   emp_no=f"{admdvs}{rng.randrange(1, 6000):08d}" if other == "310" else None,
                   event_time=tb.at(day, rng.randrange(9 * 3600, 17 * 3600)))
        records.append(dup)
        has_key.add((psn_no, other))
        used.update({key, (psn_no, other)})
        _tag(dup, "E09", "same_psn_no" if same_psn else "second_psn_no")
        _tag(rec, "E09", "partner")
        done += 1
