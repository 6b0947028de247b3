"""Settlement money in integer cents (Avro decimal(16,2) unscaled values).

Each fund pays a share of what the funds before it left of the policy-scope
amount, so the parts are non-negative and sum exactly: the funds to
fund_pay_sumamt (T05), and fund + personal account + 共济 + cash + hospital
share to medfee_sumamt (T04).  Ratios aim at the plan's levels: employee
inpatient ≈ 80% of policy scope (R01), resident inpatient ≈ 70-75% (R02),
resident general outpatient ≈ 55% (R03), 大病 ≈ 60% of what remains (R04),
medical assistance ≈ 70%+ for 特困/低保 (R05).
"""
from __future__ import annotations

import math
import random

from datagen import codes

MONEY_FIELDS = ("medfee_sumamt", "inscp_scp_amt", "hifp_pay", "cvlserv_pay", "hifes_pay",
                "hifmi_pay", "hifob_pay", "hifdm_pay", "maf_pay", "oth_pay", "fund_pay_sumamt",
                "acct_pay", "acct_mulaid_pay", "psn_cash_pay", "hosp_part_amt")
FUND_FIELDS = ("hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "hifdm_pay",
               "maf_pay", "oth_pay")
ASSIST_SHARE = {"TEKUN": (0.68, 0.92), "DIBAO": (0.62, 0.82), "DIBIAN": (0.4, 0.6),
                "RETURN_POOR": (0.4, 0.6)}


def total_cost(rng: random.Random, cat: str) -> int:
    median, sigma = codes.COST[cat]
    yuan = rng.lognormvariate(math.log(median), sigma)
    return max(100, min(80_000_000, int(yuan * 100)))


def _pooling_ratio(rng: random.Random, cat: str, insutype: str, inpatient: bool,
                   offsite: bool) -> float:
    u = rng.uniform
    employee = insutype != "390"
    if insutype == "340":
        return 0.98  # 离休: nearly everything
    if inpatient:
        r = u(0.80, 0.92) if cat == "52" else u(0.72, 0.84) if employee else u(0.65, 0.79)
        return r - 0.08 if offsite else r
    if cat == "41":
        return 0.0 if rng.random() < (0.8 if employee else 0.7) else u(0.4, 0.6)
    if cat == "11":
        return u(0.5, 0.7) if employee else u(0.5, 0.6)
    if cat == "14":
        return u(0.7, 0.85) if employee else u(0.6, 0.75)
    if cat == "15":
        return u(0.65, 0.8)
    if cat == "51":
        return u(0.6, 0.8)
    return u(0.4, 0.6) if employee else u(0.4, 0.55)


def split(rng: random.Random, cat: str, insutype: str, person, medfee: int,
          offsite: bool) -> dict[str, int]:
    """All 15 money fields of a normal settlement of total cost ``medfee``."""
    u = rng.uniform
    inpatient = cat in codes.INPATIENT
    scope_share = u(0.55, 1.0) if cat == "41" else u(0.8, 0.95) if inpatient else u(0.85, 1.0)
    scope = int(medfee * scope_share)
    hifp = int(scope * _pooling_ratio(rng, cat, insutype, inpatient, offsite))
    hifob = hifmi = cvl = hifes = hifdm = maf = oth = 0
    if inpatient and insutype == "310" and scope > 5_000_000:
        hifob = int((scope - hifp) * u(0.3, 0.55))  # 职工大额
    if inpatient and insutype == "390" and scope - hifp > 500_000:
        hifmi = int((scope - hifp) * u(0.55, 0.72))  # 居民大病
    rest = scope - hifp - hifob - hifmi
    if insutype == "310" and person.civil_servant and (inpatient or cat == "14"):
        cvl = int(rest * u(0.3, 0.6))
        rest -= cvl
    if insutype == "310" and person.enterprise_supp and inpatient:
        hifes = int(rest * u(0.1, 0.3))
        rest -= hifes
    if person.disabled_serviceman and inpatient:
        hifdm = rest // 2
        rest -= hifdm
    if person.assist in ASSIST_SHARE and not offsite:  # 医疗救助, outpatient included
        maf = int(rest * u(*ASSIST_SHARE[person.assist]))
        rest -= maf
    if inpatient and rng.random() < 0.004:
        oth = rest // 5
    fund = hifp + cvl + hifes + hifmi + hifob + hifdm + maf + oth
    own = medfee - fund
    hosp = 0
    if inpatient and rng.random() < 0.03:
        hosp = min(own, int(medfee * u(0.0, 0.02)))  # borne by the hospital (DRG overrun)
    own -= hosp
    acct = mulaid = 0
    if insutype == "310":
        if cat == "41":
            acct = own if rng.random() < 0.85 else int(own * u(0.5, 1.0))
        elif inpatient:
            acct = int(own * u(0.0, 0.3))
        else:
            acct = int(own * u(0.5, 1.0))
    elif person.family_acct and not inpatient:
        mulaid = int(own * u(0.5, 1.0))
    return {
        "medfee_sumamt": medfee, "inscp_scp_amt": scope, "hifp_pay": hifp,
        "cvlserv_pay": cvl, "hifes_pay": hifes, "hifmi_pay": hifmi, "hifob_pay": hifob,
        "hifdm_pay": hifdm, "maf_pay": maf, "oth_pay": oth, "fund_pay_sumamt": fund,
        "acct_pay": acct, "acct_mulaid_pay": mulaid, "psn_cash_pay": own - acct - mulaid,
        "hosp_part_amt": hosp,
    }
