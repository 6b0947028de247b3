"""结算: visits of residents (and of visitors insured in other provinces)
to designated institutions, month by month, with amounts, dates, payment
method and audit flags; then the business events that version them —
reversals (冲销, some followed by a re-settlement and some arriving after
it), corrections (a newer version of a setl_id, some moving it to another
county or month) and a few versions emitted after as_of.

Where people are treated: pharmacies and outpatient care in their county;
inpatient stays also at their city's and Yinchuan's tertiary hospitals
(市属/区属 hospitals settle under the city code, 市本级), and a few in
other provinces (异地就医: direct or manual reimbursement).  Visitors with
a chronic disease settle category-14 visits directly in a handful of
counties (I19).
"""
from __future__ import annotations

import math
import random

from datagen import amounts, codes
from datagen import timebase as tb
from datagen.context import Context, new_uuid
from datagen.people import Person

OUTPATIENT_GRADE_WEIGHT = {"一级": 6, "一级甲等": 6, "二级": 3, "二级甲等": 3, "二级乙等": 3,
                           "未定级": 1, "三级甲等": 1, "三级乙等": 1}
INPATIENT_GRADE_WEIGHT = {"一级": 1, "一级甲等": 2, "二级": 4, "二级甲等": 6, "二级乙等": 5,
                          "未定级": 1, "三级甲等": 6, "三级乙等": 5}
SETL_HOURS = {"41": (8, 22), "13": (0, 24), "24": (0, 24)}  # others: 8-18


class Institutions:
    """Designated institutions by county, and the region each settles under."""

    def __init__(self, ctx: Context) -> None:
        self.pharmacies: dict[str, list[str]] = {c: [] for c in ctx.counties}
        hospitals: dict[str, list[tuple[str, str]]] = {c: [] for c in ctx.counties}
        self.fix_admdvs: dict[str, str] = {}
        self.tertiary: dict[str, list[str]] = {c: [] for c in ctx.cities}
        for inst in ctx.ref.institutions:
            code, county, grade = inst["fixmedins_code"], inst["admdvs"], inst["grade"]
            if county not in hospitals:
                continue
            if inst["kind"] == "P":
                self.pharmacies[county].append(code)
                self.fix_admdvs[code] = county
                continue
            hospitals[county].append((code, grade))
            if grade.startswith("三级"):  # city / autonomous-region hospitals: 市本级
                self.fix_admdvs[code] = ctx.city_of[county]
                self.tertiary[ctx.city_of[county]].append(code)
            else:
                self.fix_admdvs[code] = county
        self.outpatient = {c: self._weighted(h, OUTPATIENT_GRADE_WEIGHT)
                           for c, h in hospitals.items()}
        self.inpatient = {c: self._weighted(h, INPATIENT_GRADE_WEIGHT)
                          for c, h in hospitals.items()}
        self.primary = {c: [code for code, g in h if g.startswith("一级")] or [h[0][0]]
                        for c, h in hospitals.items()}

    @staticmethod
    def _weighted(hospitals, weights):
        codes_, cum, total = [], [], 0
        for code, grade in hospitals:
            total += weights.get(grade, 1)
            codes_.append(code)
            cum.append(total)
        return codes_, cum

    def pick(self, rng: random.Random, table, county: str) -> str:
        codes_, cum = table[county]
        return rng.choices(codes_, cum_weights=cum)[0]


class SettlementGenerator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rng = ctx.rng("settlement")
        self.inst = Institutions(ctx)
        self.late_share = 0.008 * ctx.defect_rate
        self.other_fix = [c for c, _ in codes.OTHER_FIX_ADMDVS]
        self.other_fix_w = [w for _, w in codes.OTHER_FIX_ADMDVS]
        self.records: list[dict] = []
        self.reversals: list[dict] = []
        self.corrections: list[dict] = []
        self.after_as_of: list[dict] = []
        self.edges: dict[str, list[str]] = {}

    # -- one settlement ---------------------------------------------------
    def _where(self, p: Person, cat: str, visitor: bool, county: str):
        """(fixmedins_code, fix_blng_admdvs, offsite) of a visit."""
        rng, inst = self.rng, self.inst
        inpatient = cat in codes.INPATIENT
        r = rng.random()
        if not visitor and cat != "41" and r < (0.045 if inpatient else 0.006):
            admdvs = rng.choices(self.other_fix, weights=self.other_fix_w)[0]
            return f"H{admdvs}{rng.randrange(1, 400):05d}", admdvs, True
        if cat == "41":
            code = rng.choice(inst.pharmacies[county])
        elif inpatient and r < 0.40:
            city = self.ctx.city_of[county] if r < 0.26 else "640100"
            code = rng.choice(inst.tertiary[city])
        elif inpatient:
            code = inst.pick(rng, inst.inpatient, county)
        elif cat == "11" and rng.random() < 0.5:
            code = rng.choice(inst.primary[county])
        else:
            code = inst.pick(rng, inst.outpatient, county)
        return code, inst.fix_admdvs[code], False

    def build(self, p: Person, insutype: str, insu_admdvs: str, cat: str, day: int,
              visitor: bool = False, county: str | None = None) -> dict | None:
        ctx, rng = self.ctx, self.rng
        code, fix, offsite = self._where(p, cat, visitor, county or p.county)
        inpatient = cat in codes.INPATIENT
        end = day
        if inpatient:
            stay = codes.STAY[cat]
            los = (rng.random() < 0.3) if stay == 0 else max(1, round(
                rng.lognormvariate(math.log(stay), 0.5)))
            begn = end - los
        else:
            begn = end
        setl_type = "2"
        r = rng.random()
        if offsite and inpatient and r < (0.26 if day < ctx.first_day + 365 else 0.19):
            setl_type = "1"  # paid by the person, reimbursed at home (零星报销)
        elif not visitor and r < 0.02 and cat != "41":
            setl_type = "1"
        elif inpatient and r < 0.022:
            setl_type = "3"  # 补充报销
        if setl_type == "2":
            lo, hi = SETL_HOURS.get(cat, (8, 18))
            setl_time = tb.at(end, rng.randrange(lo * 3600, hi * 3600))
        else:
            setl_day = tb.deadline(end, rng.randrange(8, 40))
            setl_time = tb.at(setl_day, rng.randrange(9 * 3600, 17 * 3600))
        if setl_time > ctx.as_of:
            return None
        rec = {
            "event_id": new_uuid(rng), "event_time": self._event_time(setl_time),
            "setl_id": self._setl_id(fix, setl_time), "mdtrt_id": self._mdtrt_id(fix, begn),
            "psn_no": p.psn_no, "insutype": insutype, "insu_admdvs": insu_admdvs,
            "fix_blng_admdvs": fix, "fixmedins_code": code, "med_type": rng.choice(
                codes.MED_TYPES[cat]), "begndate": begn, "enddate": end, "setl_time": setl_time,
        }
        rec.update(amounts.split(rng, cat, insutype, p, amounts.total_cost(rng, cat), offsite))
        diag, dise = self._diagnosis(p, cat)
        year_share = 0.55 if tb.to_date(end).year <= 2022 else 0.78
        rec.update({
            "dscg_maindiag_code": diag, "dise_codg": dise,
            "pay_method": self._pay_method(cat, fix, offsite, begn, end, code, year_share),
            "setl_type": setl_type,
            "smart_audit": rng.random() < (0.9 if offsite else 0.955 if year_share < 0.6
                                           else 0.985),
            "assist_grp": p.assist, "refd_setl_flag": "0", "init_setl_id": None,
            "_cat": cat, "_person": p, "_local_fix": not offsite,
        })
        return rec

    def _event_time(self, business: int) -> int:
        rng = self.rng
        r = rng.random()
        if r < self.late_share:
            t = business + rng.randrange(49 * tb.HOUR_MS, 20 * tb.DAY_MS)
            if t <= self.ctx.as_of:
                return t
        delay = rng.randrange(1, 600) * 1000 if r < 0.95 else rng.randrange(1, 6) * tb.HOUR_MS
        return min(business + delay, self.ctx.as_of)

    def _setl_id(self, fix: str, setl_time: int) -> str:
        return f"{fix[:4]}{tb.ymd(tb.day_of(setl_time))}{self.ctx.next_id('setl'):09d}"

    def _mdtrt_id(self, fix: str, begn: int) -> str:
        return f"M{fix[:4]}{tb.ymd(begn)}{self.ctx.next_id('mdtrt'):09d}"

    def _diagnosis(self, p: Person, cat: str):
        rng = self.rng
        if cat == "14":
            return None, p.chronic[0]
        if cat == "26":
            code, diag, _ = rng.choice(codes.SINGLE_DISEASE)
            return diag, code
        if cat == "28":
            code, diag, _ = rng.choice(codes.DAY_SURGERY)
            return diag, code
        if cat == "52":
            return rng.choices(*zip(*codes.MATERNITY_DIAG))[0], None
        if cat == "22":
            return rng.choices(*zip(*codes.TRAUMA_DIAG))[0], None
        if cat in codes.INPATIENT:
            return rng.choices(*zip(*codes.INPATIENT_DIAG))[0], None
        return None, None

    def _pay_method(self, cat, fix, offsite, begn, end, code, drg_share) -> str:
        rng = self.rng
        if cat == "26":
            return "DISEASE"
        if cat in codes.INPATIENT:
            if offsite:
                return "ITEM"
            if end - begn > 25 and rng.random() < 0.6:
                return "BED_DAY"
            if rng.random() < drg_share:
                return "DRG" if fix[:4] in ("6401", "6402") else "DIP"
            return "ITEM"
        if cat == "11" and not offsite and code in self.inst.primary.get(fix, ()):
            return "CAPITATION" if rng.random() < 0.5 else "ITEM"
        return "ITEM"

    # -- the month loop ------------------------------------------------------
    def generate(self, residents: list[Person], visitors: list[Person]) -> list[dict]:
        ctx, rng = self.ctx, self.rng
        n = len(residents)
        chronic = [p for p in residents if p.chronic]
        women = [p for p in residents if p.gend == "2"]
        visitor_chronic = [v for v in visitors if v.chronic]
        i19_counties = rng.sample(ctx.counties, min(len(ctx.counties), 9))
        home_of = {v.psn_no: rng.choice(i19_counties) for v in visitor_chronic}
        add = self.records.append
        for m in ctx.months:
            days = m.last_day - m.first_day + 1
            season = 1 + 0.12 * math.cos(2 * math.pi * (m.month - 1) / 12)
            for cat, rate in codes.VISIT_RATES.items():
                expected = rate * n * days / 365 * season
                for _ in range(self._count(expected)):
                    p = residents[rng.randrange(n)]
                    day = m.first_day + rng.randrange(days)
                    cov = p.covered(day)
                    if cov is None:
                        continue
                    age = (day - p.brdy) / 365.25
                    if cat in codes.INPATIENT and rng.random() > 0.25 + age / 80:
                        continue  # inpatient stays weigh towards the old
                    rec = self.build(p, cov[0], cov[1], cat, day)
                    if rec:
                        add(rec)
            for p in chronic:
                if rng.random() < codes.CHRONIC_VISITS_PER_YEAR / 12:
                    day = m.first_day + rng.randrange(days)
                    cov = p.covered(day)
                    if cov and (rec := self.build(p, cov[0], cov[1], "14", day)):
                        add(rec)
            for cat, rate in codes.MATERNITY_RATES.items():
                for _ in range(self._count(rate * len(women) * days / 365 * 0.37)):
                    p = women[rng.randrange(len(women))]
                    day = m.first_day + rng.randrange(days)
                    cov = p.covered(day)
                    if cov and 20 <= (day - p.brdy) / 365.25 < 45 and (
                            rec := self.build(p, cov[0], cov[1], cat, day)):
                        add(rec)
            self._visitors(m, days, visitors, visitor_chronic, home_of)
        return self.records

    def _visitors(self, m, days, visitors, visitor_chronic, home_of) -> None:
        rng, ctx = self.rng, self.ctx
        for cat, rate in (("11", 1.0), ("41", 0.6), ("13", 0.1), ("21", 0.12)):
            for _ in range(self._count(rate * len(visitors) * days / 365)):
                v = visitors[rng.randrange(len(visitors))]
                county = rng.choices(ctx.counties, weights=ctx.county_weights)[0]
                rec = self.build(v, v.insutype, v.insu_admdvs, cat,
                                 m.first_day + rng.randrange(days), visitor=True, county=county)
                if rec:
                    self.records.append(rec)
        for v in visitor_chronic:
            if rng.random() < 0.6:
                rec = self.build(v, v.insutype, v.insu_admdvs, "14",
                                 m.first_day + rng.randrange(days), visitor=True,
                                 county=home_of[v.psn_no])
                if rec:
                    self.records.append(rec)

    def _count(self, expected: float) -> int:
        return max(0, round(self.rng.gauss(expected, math.sqrt(expected)))) if expected else 0
