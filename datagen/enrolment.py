"""参保登记: every resident's enrolment history as versioned events.

A baseline load on the first day of the window carries everyone enrolled
before it (the platform's migration batch); then at most one life event
per person: a job start (390 ended, 310 begun — in that order, so no
period-end snapshot sees both active), a job loss, a move to another
county, a suspension, a death or emigration, or a birth.  Each event is a
new version of a (psn_no, insutype) key and also shapes the person's
coverage, which the claim generators use.
"""
from __future__ import annotations

import random

from datagen import timebase as tb
from datagen.context import Context, new_uuid
from datagen.identity import chinese_name
from datagen.people import Person

FOREVER = 10**6  # an epoch day far in the future: open-ended coverage
YEAR = 365


def _emp_no(rng: random.Random, admdvs: str) -> str:
    return f"{admdvs}{rng.randrange(1, 6000):08d}"


def _rec(rng, p: Person, insutype, stas, admdvs, emp_no, crt, paus, event_time) -> dict:
    return {
        "event_id": new_uuid(rng), "event_time": event_time, "psn_no": p.psn_no,
        "psn_cert_type": p.cert_type, "certno": p.certno, "psn_name": p.name,
        "gend": p.gend, "brdy": p.brdy, "insutype": insutype, "psn_insu_stas": stas,
        "insu_admdvs": admdvs, "emp_no": emp_no, "crt_insu_date": crt, "paus_insu_date": paus,
    }


def _office(rng: random.Random, day: int) -> int:
    return tb.at(day, rng.randrange(9 * 3600, 17 * 3600))


def _employee_region(rng: random.Random, ctx: Context, county: str) -> str:
    r = rng.random()
    return ctx.city_of[county] if r < 0.10 else ctx.province if r < 0.12 else county


def _life_event(rng: random.Random, years: float, main: str, age: float, county_level: bool):
    choices = [("end", 0.007 + (0.04 if age > 75 else 0.0))]
    if main == "390" and 18 <= age < 50:
        choices.append(("job_start", 0.02))
    if main == "310" and age < 55:
        choices.append(("job_loss", 0.012))
    if county_level:
        choices.append(("move", 0.008))
    if main == "390":
        choices.append(("suspend", 0.006))
    u, acc = rng.random(), 0.0
    for name, per_year in choices:
        acc += per_year * years
        if u < acc:
            return name
    return None


def generate(ctx: Context, residents: list[Person]) -> list[dict]:
    rng = ctx.rng("enrolment")
    w0, w1 = ctx.first_day, ctx.last_day
    years = len(ctx.months) / 12
    d1998, d2010 = tb.from_date(tb.to_date(0).replace(year=1998)), tb.from_date(
        tb.to_date(0).replace(year=2010))
    out: list[dict] = []
    add = out.append
    for p in residents:
        age = (w0 - p.brdy) / 365.25
        if p.brdy >= w0:  # born in the window: enrolled as a resident after birth
            crt = p.brdy + (0 if rng.random() < 0.06 else rng.randrange(1, 90))
            if crt <= w1:
                add(_rec(rng, p, "390", "1", p.county, None, crt, None, _office(rng, crt)))
                p.coverage.append((crt, FOREVER, "390", p.county))
            continue
        base_t = tb.at(w0, rng.randrange(2 * 3600, 5 * 3600))
        # main enrolment
        if age >= 88 and rng.random() < 0.3:
            main, admdvs = "340", rng.choice((ctx.city_of[p.county], ctx.province))
        elif (18 <= age < 60 and rng.random() < 0.30) or (age >= 60 and rng.random() < 0.22):
            main, admdvs = "310", _employee_region(rng, ctx, p.county)
        else:
            main, admdvs = "390", p.county
        if main == "310":
            p.emp_no = _emp_no(rng, admdvs)
            p.wage_cents = min(2_200_000, max(360_000, int(rng.lognormvariate(8.6, 0.35) * 100)))
            p.civil_servant = admdvs != p.county and rng.random() < 0.35 or rng.random() < 0.06
            p.enterprise_supp = rng.random() < 0.06
            start = max(p.brdy + 18 * YEAR + rng.randrange(0, 8 * YEAR), d1998)
        else:
            start = max(p.brdy + rng.randrange(1, 90), d2010)
        crt = rng.randrange(min(start, w0 - 1), w0) if start < w0 - 1 else w0 - 1
        r = rng.random()
        stas = "1" if r < 0.955 else "2" if r < 0.97 else "4" if r < 0.995 else "0"
        if stas == "0" and main != "390":
            stas = "1"
        paus = rng.randrange(crt, w0) if stas in ("2", "4") else None
        emp = p.emp_no if main == "310" else None
        add(_rec(rng, p, main, stas, admdvs, emp, crt, paus, base_t))
        if stas != "1":
            continue
        supplementary = []
        if main == "310" and age < 60:
            if rng.random() < 0.35:
                supplementary.append("330")
            if p.civil_servant:
                supplementary.append("320")
            if p.gend == "2" and 20 <= age < 45 and rng.random() < 0.08:
                supplementary.append("510")
        for s in supplementary:
            add(_rec(rng, p, s, "1", admdvs, p.emp_no, crt, None, base_t + 1))
        if main == "390" and age > 30 and crt - p.brdy > 25 * YEAR and rng.random() < 0.04:
            # an earlier job: a terminated 310 key (emp_no kept, E08 applies to it)
            old_crt = rng.randrange(p.brdy + 18 * YEAR, crt - 400)
            add(_rec(rng, p, "310", "4", p.county, _emp_no(rng, p.county), old_crt, crt - 1,
                     base_t + 2))

        # one life event in the window, or none (probabilities per year)
        day = w0 + 1 + rng.randrange(max(1, w1 - w0 - 2))
        t = _office(rng, day)
        event = _life_event(rng, years, main, age, admdvs == p.county)
        seg_end = FOREVER
        if event == "job_start":  # 390 ends, then 310 begins
            add(_rec(rng, p, "390", "4", admdvs, None, crt, day - 1, t))
            new_adm = _employee_region(rng, ctx, p.county)
            p.emp_no = _emp_no(rng, new_adm)
            p.wage_cents = min(2_200_000, max(360_000, int(rng.lognormvariate(8.5, 0.3) * 100)))
            add(_rec(rng, p, "310", "1", new_adm, p.emp_no, day, None,
                     t + rng.randrange(5, 30) * tb.MINUTE_MS))
            p.coverage.append((crt, day, "390", admdvs))
            p.coverage.append((day, FOREVER, "310", new_adm))
            continue
        if event == "job_loss":  # 310 suspended, a 390 enrolment soon after
            add(_rec(rng, p, "310", "2", admdvs, p.emp_no, crt, day, t))
            for s in supplementary:
                add(_rec(rng, p, s, "4", admdvs, p.emp_no, crt, day, t + 1000))
            p.coverage.append((crt, day, "310", admdvs))
            new_day = day + rng.randrange(0, 30)
            if new_day <= w1:
                t2 = max(_office(rng, new_day), t + 10 * tb.MINUTE_MS)
                add(_rec(rng, p, "390", "1", p.county, None, new_day, None, t2))
                p.coverage.append((new_day, FOREVER, "390", p.county))
            continue
        if event == "move":  # 转移接续 to another county: a new version of the key
            new_county = rng.choice([c for c in ctx.counties if c != p.county])
            add(_rec(rng, p, main, "1", new_county, emp, day, None, t))
            p.coverage.append((crt, day, main, admdvs))
            p.coverage.append((day, FOREVER, main, new_county))
            p.county = new_county
            continue
        if event == "end":  # death or emigration
            add(_rec(rng, p, main, "4", admdvs, emp, crt, day, t))
            for s in supplementary:
                add(_rec(rng, p, s, "4", admdvs, p.emp_no, crt, day, t + 1000))
            seg_end = day
        elif event == "suspend":  # a resident who did not pay
            add(_rec(rng, p, main, "2", admdvs, None, crt, day, t))
            seg_end = day
        p.coverage.append((crt, seg_end, main, admdvs))
    return out


CORRECTION_KINDS = (("fix_defect", 50), ("region", 25), ("name_change", 15), ("tie", 10))


def add_corrections(ctx: Context, records: list[dict]) -> list[dict]:
    """Newer versions of single-version keys: a fixed data-entry defect (the
    old version gets one in defects.py), a corrected region, a changed name,
    or a same-instant correction decided by the greater event_id.  Scales
    with --defect-rate."""
    rng = random.Random(ctx.seed * 1_000 + 20)  # independent of generate()'s draws
    versions: dict = {}
    for rec in records:
        key = (rec["psn_no"], rec["insutype"])
        versions[key] = versions.get(key, 0) + 1
    single = [r for r in records if versions[(r["psn_no"], r["insutype"])] == 1]
    kinds, weights = zip(*CORRECTION_KINDS)
    entries, taken = [], set()
    want = ctx.scaled(0.003 * len(versions))
    tries = 0
    while len(entries) < want and single and tries < 50 * want:
        tries += 1
        old = single[rng.randrange(len(single))]
        key = (old["psn_no"], old["insutype"])
        if (key in taken or "_nodefect" in old
                or old["event_time"] + 31 * tb.DAY_MS > ctx.as_of):
            continue
        taken.add(key)
        kind = rng.choices(kinds, weights=weights)[0]
        if kind == "region" and old["insu_admdvs"] not in ctx.counties:
            kind = "fix_defect"
        new = dict(old, event_id=new_uuid(rng),
                   event_time=old["event_time"] + rng.randrange(tb.HOUR_MS, 30 * tb.DAY_MS))
        entry = {"key": list(key), "kind": kind}
        if kind == "fix_defect":
            old["_fix_defect"] = True
            new["_nodefect"] = True
        elif kind == "region":
            new["insu_admdvs"] = rng.choice([c for c in ctx.counties if c != old["insu_admdvs"]])
            entry["from"], entry["to"] = old["insu_admdvs"], new["insu_admdvs"]
        else:
            while new["psn_name"] == old["psn_name"]:
                new["psn_name"] = chinese_name(rng)
            if kind == "tie":
                new["event_time"] = old["event_time"]
                if new["event_id"] < old["event_id"]:
                    new["event_id"], old["event_id"] = old["event_id"], new["event_id"]
        records.append(new)
        entries.append(entry)
    return entries


def boundary_cases(ctx: Context, records: list[dict]) -> list[list[str]]:
    """Newborns enrolled on their birth day before 08:00 Beijing: birth date
    and crt_insu_date equal the business date of event_time (the previous
    UTC day), so E01 and E07 pass only when evaluated in Asia/Shanghai."""
    rng = random.Random(ctx.seed * 1_000 + 21)
    persons: dict[str, int] = {}
    for r in records:
        persons[r["psn_no"]] = persons.get(r["psn_no"], 0) + 1
    newborn = [r for r in records if r["brdy"] >= ctx.first_day and r["psn_cert_type"] == "01"
               and persons[r["psn_no"]] == 1]
    keys = []
    for rec in rng.sample(newborn, min(len(newborn), ctx.scaled(0.0003 * len(records)))):
        rec["crt_insu_date"] = rec["brdy"]
        rec["event_time"] = tb.at(rec["brdy"], rng.randrange(300, 7 * 3600 + 3000))
        rec["_nodefect"] = True
        keys.append([rec["psn_no"], rec["insutype"]])
    return keys
