"""The synthetic population: Ningxia residents and visitors insured in other
provinces, with identity, demographics and the flags that shape their
claims (medical-assistance group, chronic disease, civil servant, …).

Enrolment history (and so coverage over time) is added by enrolment.py.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from datagen import codes, identity
from datagen import timebase as tb
from datagen.context import Context

# Age bands (years at the start of the window) and their share.
AGE_BANDS = ((0, 5, 5), (5, 15, 12), (15, 25, 10), (25, 35, 15), (35, 45, 14), (45, 55, 16),
             (55, 65, 14), (65, 75, 9.5), (75, 85, 3.8), (85, 98, 0.7))
ASSIST = (("NONE", 936), ("DIBAO", 32), ("TEKUN", 9), ("DIBIAN", 12), ("RETURN_POOR", 11))
# 固原 counties whose residents born before 2001 carry 固原地区 ID prefixes.
OLD_ID_REGION = {"640402": "642221", "640522": "642222", "640422": "642223",
                 "640423": "642224", "640424": "642225", "640425": "642226"}


@dataclass(slots=True)
class Person:
    psn_no: str
    certno: str
    cert_type: str
    name: str
    gend: str
    brdy: int  # epoch day
    county: str  # where the person lives
    assist: str = "NONE"
    chronic: tuple | None = None  # (dise_codg, diagnosis) of a recognised 门慢特病
    civil_servant: bool = False
    enterprise_supp: bool = False
    disabled_serviceman: bool = False
    family_acct: bool = False  # a family member's employee account pays (共济)
    emp_no: str | None = None
    wage_cents: int = 0
    insu_admdvs: str = ""  # of the visitor's insurance (visitors only)
    insutype: str = ""  # of the visitor's insurance (visitors only)
    # (start_day, end_day_exclusive, insutype, insu_admdvs) of active coverage
    coverage: list[tuple[int, int, str, str]] = field(default_factory=list)

    @property
    def male(self) -> bool:
        return self.gend == "1"

    def covered(self, day: int) -> tuple[str, str] | None:
        for start, end, insutype, admdvs in self.coverage:
            if start <= day < end:
                return insutype, admdvs
        return None


def _birth_day(rng: random.Random, ctx: Context) -> int:
    lo, hi, _ = rng.choices(AGE_BANDS, weights=[b[2] for b in AGE_BANDS])[0]
    age_days = rng.randrange(lo * 365, hi * 365 + 1)
    return ctx.first_day - 1 - age_days


class Certnos:
    """Unique resident IDs: a repeated ID would be a false 重复参保 (E09)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, rng: random.Random, region: str, brdy: int, male: bool) -> str:
        while True:
            cert = identity.resident_id(region, tb.ymd(brdy), identity.sequence_for(rng, male))
            if cert not in self.used:
                self.used.add(cert)
                return cert


def _id_region(rng: random.Random, ctx: Context, county: str, brdy: int) -> str:
    r = rng.random()
    if r < 0.07:
        return rng.choice(codes.OTHER_ID_REGIONS[:8])  # born in another province
    if r < 0.09:
        return rng.choice(ctx.counties)  # born in another Ningxia county
    if county in OLD_ID_REGION and tb.to_date(brdy).year < 2001 and r < 0.55:
        return OLD_ID_REGION[county]
    return county


def _cert_type(rng: random.Random) -> str:
    r = rng.random()
    return "01" if r < 0.992 else "17" if r < 0.996 else "90" if r < 0.998 else "99"


def make_person(rng: random.Random, ctx: Context, certnos: Certnos, psn_no: str,
                county: str, brdy: int) -> Person:
    male = rng.random() < 0.505
    cert_type = _cert_type(rng)
    if cert_type == "17":  # 港澳台居民居住证: same layout, 810000/820000/830000
        certno = certnos.make(rng, rng.choice(("810000", "820000", "830000")), brdy, male)
    elif cert_type == "01":
        certno = certnos.make(rng, _id_region(rng, ctx, county, brdy), brdy, male)
    else:  # a social-security card or other document number
        certno = f"{'A' if cert_type == '90' else 'E'}{rng.randrange(10**8, 10**9)}"
    p = Person(psn_no=psn_no, certno=certno, cert_type=cert_type,
               name=identity.chinese_name(rng), gend="1" if male else "2", brdy=brdy,
               county=county)
    p.assist = rng.choices([a[0] for a in ASSIST], weights=[a[1] for a in ASSIST])[0]
    age = (ctx.first_day - brdy) / 365.25
    if rng.random() < (0.02 if age < 40 else 0.12 if age < 60 else 0.28):
        p.chronic = rng.choices(codes.CHRONIC, weights=[c[2] for c in codes.CHRONIC])[0][:2]
    p.family_acct = rng.random() < 0.08
    p.disabled_serviceman = rng.random() < 0.002
    return p


def build(ctx: Context) -> tuple[list[Person], list[Person]]:
    """(Ningxia residents, visitors insured elsewhere)."""
    rng = ctx.rng("people")
    certnos = Certnos()
    residents = []
    births_share = 0.0095 * len(ctx.months) / 12  # born during the window
    window = ctx.last_day - ctx.first_day - 20
    for i in range(ctx.persons):
        county = rng.choices(ctx.counties, weights=ctx.county_weights)[0]
        if rng.random() < births_share and window > 0:
            brdy = ctx.first_day + rng.randrange(window)
        else:
            brdy = _birth_day(rng, ctx)
        residents.append(make_person(rng, ctx, certnos, f"64000{i + 1:011d}", county, brdy))
    visitors = []
    other = [c for c, _ in codes.OTHER_INSU_ADMDVS]
    weights = [w for _, w in codes.OTHER_INSU_ADMDVS]
    for i in range(max(20, ctx.persons // 80)):
        admdvs = rng.choices(other, weights=weights)[0]
        v = make_person(rng, ctx, certnos, f"{admdvs[:2]}000{i + 1:011d}", admdvs,
                        _birth_day(rng, ctx))
        v.insu_admdvs = admdvs
        v.insutype = "310" if rng.random() < 0.45 else "390"
        if rng.random() < 0.3:  # visitors with a chronic disease are treated regularly
            v.chronic = rng.choices(codes.CHRONIC, weights=[c[2] for c in codes.CHRONIC])[0][:2]
        v.coverage = [(ctx.first_day - 3650, ctx.last_day + 3650, v.insutype, admdvs)]
        visitors.append(v)
    return residents, visitors
