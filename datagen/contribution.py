"""缴费: employees pay monthly (2% person, 6.5% employer of the wage base;
some flexible workers quarterly, some 补缴 arrears), residents pay the year's
flat premium in the 集中征缴期 (September to February), assisted groups
with a government subsidy (资助参保).

clct_time is when the money arrived; upld_time when the platform received
the record — mostly minutes later, some the next day, a few days late
(those miss I10's T+1 and are late events; their share scales with
--defect-rate).  event_time follows upld_time.
"""
from __future__ import annotations

import random

from datagen import timebase as tb
from datagen.context import Context, new_uuid
from datagen.people import Person

RESIDENT_PREMIUM = {2021: 28000, 2022: 32000, 2023: 35000, 2024: 38000, 2025: 40000,
                    2026: 40000, 2027: 40000}  # cents per year (individual part)
LARGE_AMOUNT_PREMIUM = 9600  # 大额医疗费用补助, cents per year


def _upload_time(rng: random.Random, clct: int, clct_day: int, late_share: float) -> int:
    """Mostly minutes after the money arrived, some the next calendar day
    (still T+1); a ``late_share`` at least 49 hours later (misses T+1 and
    arrives as a late event)."""
    r = rng.random()
    if r < late_share:
        return clct + rng.randrange(49 * tb.HOUR_MS, 8 * tb.DAY_MS)
    if r < 0.86:
        return clct + rng.randrange(20, 1800) * 1000
    if r < 0.96:
        return clct + rng.randrange(2, 14) * tb.HOUR_MS  # at latest the next morning
    return tb.at(clct_day + 1, rng.randrange(8 * 3600, 20 * 3600))


def _record(rng, ctx: Context, p: Person, insutype, admdvs, begn, end, clct_type,
            psn, emp, oth, clct_day) -> dict | None:
    clct = tb.at(clct_day, rng.randrange(8 * 3600, 20 * 3600))
    upld = _upload_time(rng, clct, clct_day, 0.012 * ctx.defect_rate)
    event_time = upld + rng.randrange(1, 300) * 1000
    if event_time > ctx.as_of:
        return None  # not received yet at the end of the window
    return {"event_id": new_uuid(rng), "event_time": event_time, "psn_no": p.psn_no,
            "insutype": insutype, "insu_admdvs": admdvs, "accrym_begn": begn, "accrym_end": end,
            "clct_type": clct_type, "psn_clct_amt": psn, "emp_clct_amt": emp,
            "oth_clct_amt": oth, "clct_time": clct, "upld_time": upld}


def generate(ctx: Context, residents: list[Person]) -> list[dict]:
    rng = ctx.rng("contribution")
    out: list[dict] = []
    months = ctx.months
    for p in residents:
        for start, end, insutype, admdvs in p.coverage:
            if insutype == "310":
                _employee(rng, ctx, p, months, start, end, admdvs, out)
            elif insutype == "390":
                _resident(rng, ctx, p, start, end, admdvs, out)
    return out


def _employee(rng, ctx, p: Person, months, start, end, admdvs, out) -> None:
    base = p.wage_cents
    psn_m, emp_m = base * 2 // 100, base * 65 // 1000
    quarterly = rng.random() < 0.05
    large_amount = rng.random() < 0.35
    for m in months:
        if not (start <= m.last_day and m.first_day < end):
            continue
        if (m.first_day - p.brdy) / 365.25 >= 60:  # retirees no longer contribute
            return
        if quarterly and m.month % 3:
            continue
        n = 3 if quarterly else 1
        first = m if not quarterly else tb.Month(m.year, m.month - 2)
        day = min(m.last_day, m.first_day + rng.randrange(4, 25))
        rec = _record(rng, ctx, p, "310", admdvs, f"{first.year}{first.month:02d}",
                      f"{m.year}{m.month:02d}", "10", psn_m * n, emp_m * n, 0, day)
        if rec:
            out.append(rec)
        if m.month == 1 and large_amount:
            rec = _record(rng, ctx, p, "330", admdvs, f"{m.year}01", f"{m.year}12", "10",
                          LARGE_AMOUNT_PREMIUM, 0, 0, day)
            if rec:
                out.append(rec)
        if rng.random() < 0.001:  # 补缴: arrears for earlier months
            k = rng.randrange(2, 7)
            y, mo = m.year, m.month - k
            while mo < 1:
                y, mo = y - 1, mo + 12
            y2, mo2 = (m.year, m.month - 1) if m.month > 1 else (m.year - 1, 12)
            rec = _record(rng, ctx, p, "310", admdvs, f"{y}{mo:02d}", f"{y2}{mo2:02d}", "31",
                          psn_m * k, emp_m * k, 0,
                          min(m.last_day, day + rng.randrange(1, 5)))
            if rec:
                out.append(rec)


def _resident(rng, ctx, p: Person, start, end, admdvs, out) -> None:
    """The year's premium, paid between September of the year before and
    February of the year (most before January)."""
    for year in range(ctx.years[0], ctx.years[-1] + 2):
        if rng.random() < 0.02:
            continue  # did not pay this year
        premium = RESIDENT_PREMIUM.get(year, 40000)
        if rng.random() < 0.85:
            lo = tb.from_date(tb.to_date(0).replace(year=year - 1, month=9, day=1))
            day = lo + rng.randrange(0, 122)
        else:
            lo = tb.from_date(tb.to_date(0).replace(year=year, month=1, day=1))
            day = lo + rng.randrange(0, 59)
        if not (ctx.first_day <= day <= ctx.last_day and start <= day < end):
            continue
        if p.assist in ("TEKUN", "DIBAO"):
            psn, oth = 0, premium  # fully subsidised
        elif p.assist in ("DIBIAN", "RETURN_POOR"):
            psn, oth = premium // 2, premium - premium // 2
        else:
            psn, oth = premium, 0
        rec = _record(rng, ctx, p, "390", admdvs, f"{year}01", f"{year}12", "10", psn, 0, oth,
                      day)
        if rec:
            out.append(rec)
