"""The indicator catalogue (INDICATORS.md), declared once.

Used by the nightly and streaming pipelines (which SQL to run and how its
components behave over time), the warehouse dims and the report.  Targets
are not here: they live in ``pipelines/defaults.yaml`` (overridable per
year and region by ``--config``).

``time_rule`` says how a period's components come from monthly ones:
- ``flow``: records are counted in the month of their business date; YTD adds months.
- ``stock``: evaluated at the period end; YTD equals the MONTH of its last month.
- ``presence``: I19 — a county counts once per period it shows activity in.
- ``catalogue``: computed at each region from the applicable matters; no time.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Indicator:
    code: str
    name_zh: str
    name_en: str
    plan_number: int | None  # numbering of the Ningxia 2023 plan (seed 000); None if not from it
    family: str  # quality | enrolment | contribution | settlement | settlement_list | case | catalogue | treatment | cost
    time_rule: str  # flow | stock | presence | catalogue
    region_column: str
    population: str
    numerator: str
    denominator: str
    direction: str = ">="
    # Pane group of the streaming pipeline that also keeps this flow indicator
    # (transforms/streaming_compute.py GROUPS); None = the nightly job's only.
    stream_group: str | None = None


INDICATORS: tuple[Indicator, ...] = (
    Indicator("I04", "服务事项全程线上可办率", "Matters fully available online", 4, "catalogue", "catalogue",
              "matters.csv applicability", "matters applying to the region", "online_capable matters", "matters"),
    Indicator("I07", "参保信息合格率", "Enrolment information qualification rate", 7, "quality", "stock",
              "insu_admdvs", "enrolment records with psn_insu_stas 1 at period end",
              "records passing every enrolment rule", "records"),
    Indicator("I08", "结算信息合格率", "Settlement information qualification rate", 8, "quality", "flow",
              "insu_admdvs if local province, else fix_blng_admdvs",
              "latest-version settlement records (normal or reversal) with setl_time in period",
              "records passing every settlement rule", "records", stream_group="settlement"),
    Indicator("I09", "参保率", "Enrolment coverage", 9, "enrolment", "stock", "insu_admdvs",
              "distinct certno with an active 310 or 390 enrolment at period end passing the blocking rules",
              "persons", "registered population of the counties"),
    Indicator("I10", "缴费数据上传率", "Contribution upload timeliness (T+1)", 10, "contribution", "flow",
              "insu_admdvs", "contributions with clct_time in period",
              "records uploaded by clct_time's business date + 1 day", "records", stream_group="contribution"),
    Indicator("I13", "医保结算清单上传率", "Settlement-list upload rate", 13, "settlement_list", "flow",
              "fix_blng_admdvs",
              "direct inpatient and chronic-outpatient settlements at local institutions, less those not yet due",
              "settlements with a list uploaded within 30 days", "settlements", stream_group="i13"),
    Indicator("I14", "两定机构申报费用智能审核覆盖率", "Smart-audit coverage", 14, "settlement", "flow",
              "fix_blng_admdvs", "settlements at local institutions", "smart_audit true", "settlements", stream_group="settlement"),
    Indicator("I17", "DRG/DIP基金支出占比", "DRG/DIP share of inpatient fund spending", 17, "settlement", "flow",
              "fix_blng_admdvs",
              "inpatient settlements at local institutions of persons insured in the province",
              "sum hifp_pay where pay_method DRG or DIP", "sum hifp_pay", stream_group="settlement"),
    Indicator("I19", "门诊慢特病跨省直接结算县域覆盖率",
              "County coverage of cross-province chronic-outpatient direct settlement", 19, "settlement",
              "presence", "fix_blng_admdvs (county)", "local counties",
              "counties with a direct category-14 settlement of another province's insured person",
              "counties"),
    Indicator("I21", "跨省异地就医线上备案按时办结率", "On-time online cross-province filing", 21, "case",
              "flow", "insu_admdvs", "OFFSITE_FILING cases, cross_province, channel ONLINE or MOBILE",
              "completed on time", "completed + overdue open cases"),
    Indicator("I22", "住院费用跨省直接结算率", "Cross-province inpatient direct-settlement rate", 22,
              "settlement", "flow", "insu_admdvs",
              "inpatient settlements of locally insured persons at institutions of another province, setl_type 1 or 2",
              "setl_type 2", "settlements", stream_group="settlement"),
    Indicator("I24", "服务事项按时办结率", "On-time completion of service matters", 24, "case", "flow",
              "insu_admdvs", "all cases", "completed on time", "completed + overdue open cases"),
    Indicator("I25", "网上可办事项网上办结率", "Online completion of online-capable matters", 25, "case",
              "flow", "insu_admdvs", "cases completed in period whose matter is online_capable",
              "channel ONLINE or MOBILE", "cases", stream_group="filing"),
    Indicator("I26", "好差评好评率", "Satisfaction (share of good ratings)", 26, "case", "flow", "insu_admdvs",
              "cases completed in period with a rating", "rating >= 4", "rated cases", stream_group="filing"),
    Indicator("R01", "职工住院政策范围内基金支付比例", "Employee inpatient policy-scope fund payment ratio",
              None, "treatment", "flow", "insu_admdvs", "inpatient settlements, insutype 310",
              "sum(hifp_pay + hifob_pay)", "sum inscp_scp_amt", stream_group="settlement"),
    Indicator("R02", "居民住院政策范围内基金支付比例", "Resident inpatient policy-scope fund payment ratio",
              None, "treatment", "flow", "insu_admdvs", "inpatient settlements, insutype 390",
              "sum hifp_pay", "sum inscp_scp_amt", stream_group="settlement"),
    Indicator("R03", "居民普通门诊统筹支付比例", "Resident general-outpatient pooling ratio", None,
              "treatment", "flow", "insu_admdvs", "category-11 settlements, insutype 390",
              "sum hifp_pay", "sum inscp_scp_amt", stream_group="settlement"),
    Indicator("R04", "大病保险政策范围内支付比例", "Critical-illness insurance policy-scope ratio", None,
              "treatment", "flow", "insu_admdvs", "settlements with hifmi_pay > 0",
              "sum hifmi_pay", "sum(inscp_scp_amt - hifp_pay)", stream_group="settlement"),
    Indicator("R05", "特困低保医疗救助比例", "Medical-assistance ratio for 特困/低保", None, "treatment",
              "flow", "insu_admdvs", "settlements with assist_grp TEKUN or DIBAO", "sum maf_pay",
              "sum(inscp_scp_amt - hifp_pay - hifob_pay - hifmi_pay)", stream_group="settlement"),
    Indicator("S01", "即办事项占比", "Share of matters handled on the spot", None, "catalogue", "catalogue",
              "matters.csv applicability", "matters applying to the region", "promised_working_days 0",
              "matters"),
    Indicator("S02", "网上掌上办件率", "Online and mobile handling rate", None, "case", "flow", "insu_admdvs",
              "cases completed in period", "channel ONLINE or MOBILE", "cases", stream_group="filing"),
    Indicator("S03", "手工报销按时办结率", "Manual reimbursement on time (N working days)", None, "case",
              "flow", "insu_admdvs", "MANUAL_REIMB cases", "completed within N = 10 working days",
              "completed + overdue open cases"),
    Indicator("S04", "关系转移接续按时办结率", "Transfer on time (N working days)", None, "case", "flow",
              "insu_admdvs", "TRANSFER cases", "completed within N = 15 working days",
              "completed + overdue open cases"),
    Indicator("S05", "承诺时限压缩率", "Reduction of promised vs statutory time limits", None, "catalogue",
              "catalogue", "matters.csv applicability",
              "matters applying to the region with statutory_working_days > 0",
              "sum(statutory - promised)", "sum statutory"),
    Indicator("C01", "次均住院费用增幅", "Growth of average inpatient cost", None, "cost", "flow",
              "fix_blng_admdvs", "inpatient settlements at local institutions, this period and a year earlier",
              "avg - avg_prev", "avg_prev", direction="<="),
)

BY_CODE = {i.code: i for i in INDICATORS}
CODES = tuple(BY_CODE)

#: The dimension ``indicator_breakdown`` splits an indicator by (WAREHOUSE.md):
#: ``institution`` = the fixmedins_code of the records counted, ``matter`` = the
#: case's matter_code, or the matters.csv row of a catalogue indicator.  Not
#: split: indicators whose records carry neither (I07 I09 I10), I19 (a count of
#: counties) and C01 (a growth of averages: its parts do not add up by member).
BREAKDOWN: dict[str, str] = {
    **dict.fromkeys(("I08", "I13", "I14", "I17", "I22", "R01", "R02", "R03", "R04", "R05"),
                    "institution"),
    **dict.fromkeys(("I04", "I21", "I24", "I25", "I26", "S01", "S02", "S03", "S04", "S05"), "matter"),
}
#: Indicators whose numerator and denominator are money (yuan, 2 decimals); the
#: others count records, matters or days.  A shortfall is rounded up to a cent or a whole.
MONEY: frozenset[str] = frozenset(("I17", "R01", "R02", "R03", "R04", "R05"))
if set(BREAKDOWN) - set(BY_CODE) or MONEY - set(BY_CODE):
    raise ValueError("BREAKDOWN / MONEY name an indicator not in INDICATORS")

#: Plan indicators (seed 000) that no stream measures: the report lists them as
#: "manual evidence required" (INDICATORS.md, last paragraph).
MANUAL_EVIDENCE: tuple[tuple[int, str], ...] = (
    (1, "经办服务管理制度执行"),
    (2, "乡镇(街道)医疗保障服务覆盖率"),
    (3, "村(社区)医疗保障服务覆盖率"),
    (5, "智能审核和监控事前提醒覆盖率"),
    (6, "医保经办功能上线及使用情况"),
    (11, "两定机构核查覆盖率"),
    (12, "协议管理及数据上报情况"),
    (15, "住院费用抽查及处理情况"),
    (16, "统筹地区年度清算按时完成率"),
    (18, "国家集采药品/耗材采购使用激励机制落实情况"),
    (20, "跨省异地就医费用纳入就医地管理情况"),
    (23, "便民措施落实情况"),
    (27, "两定机构满意度"),
    (28, "信访转办办结率"),
    (29, "国务院大督查、审计和国家飞检问题整改率"),
    (30, "国务院大督查、审计和国家飞检发现问题情况"),
)
