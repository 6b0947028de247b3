"""Chinese terms of the report and its exports, in one place.

The analyst reads Chinese; the engineers' English names stay beside them as
a secondary line. Rule names and descriptions come from the suites'
``meta.name_zh`` / ``description_zh`` (expectations/suites/*.json), the one
place a rule is declared.
"""

from __future__ import annotations

import functools

STREAMS = {
    "enrolment": "参保登记",
    "contribution": "缴费",
    "settlement": "结算",
    "settlement_list": "结算清单",
    "filing": "经办事项",
}
SEVERITIES = {"blocking": "阻断（剔除记录）", "quality": "提示（不剔除）"}
LEVELS = {"county": "县（区）", "pooling": "统筹地区", "province": "省（区）"}
PERIOD_TYPES = {"MONTH": "本月", "YTD": "年累计"}
STATUSES = {
    "met": "达标",
    "missed": "未达标",
    "nodata": "无数据",
    "notarget": "无目标",
    "absent": "未计算",
}
DIRECTIONS = {">=": "≥", "<=": "≤"}
RUN_STATUSES = {"running": "运行中", "succeeded": "成功", "failed": "失败", "abandoned": "已放弃"}


def stream(name: str | None) -> str:
    return STREAMS.get(name or "", name or "–")


def severity(name: str | None) -> str:
    return SEVERITIES.get(name or "", name or "–")


def level(name: str | None) -> str:
    return LEVELS.get(name or "", name or "–")


@functools.cache
def _rules_zh() -> dict[str, tuple[str, str]]:
    from expectations import catalogue

    found: dict[str, tuple[str, str]] = {}
    for name in STREAMS:
        try:
            expectations = catalogue.suite(name)["expectations"]
        except KeyError:  # a stream without a suite
            continue
        for e in expectations:
            meta = e.get("meta", {})
            if meta.get("rule_id") and meta.get("name_zh"):
                found.setdefault(meta["rule_id"], (meta["name_zh"], meta.get("description_zh", "")))
    return found


def rule_name(rule_id: str) -> str:
    """The rule's Chinese name (e.g. E01 身份证号码校验), or '' if the suites lack one."""
    return _rules_zh().get(rule_id, ("", ""))[0]


def rule_description(rule_id: str) -> str:
    return _rules_zh().get(rule_id, ("", ""))[1]
