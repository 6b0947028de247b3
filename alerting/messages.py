"""Alert texts, Chinese then English: region name, figure, threshold and a
drill-down SQL query an analyst can paste into DuckDB or BigQuery (add the
dataset prefix there)."""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from alerting import calendar_check
from alerting.model import FIRING, Observation
from transforms.indicators.catalog import BREAKDOWN, INDICATORS

NAMES = {i.code: (i.name_zh, i.name_en) for i in INDICATORS}
#: What an indicator counts, one line: numerator / denominator (population).
DEFINITIONS = {i.code: f"{i.numerator} / {i.denominator} ({i.population})" for i in INDICATORS}
KIND_NAMES = {
    "pass_rate": ("质量规则通过率偏低", "rule pass rate below threshold"),
    "target_miss": ("指标未达标", "indicator misses its target"),
    "anomaly": ("指标异常波动", "indicator anomaly"),
    "silence": ("数据流中断", "stream silent"),
    "dead_letters": ("死信过多", "too many dead letters"),
}
LEVELS = {"county": ("区县", "county"), "pooling": ("统筹区", "pooling region"),
          "province": ("全区", "province")}


@dataclass(frozen=True)
class RuleMeaning:
    name_zh: str
    description_zh: str
    description: str


@functools.cache
def rule_meanings() -> dict[str, RuleMeaning]:
    """rule_id -> its Chinese name and one-line descriptions, from the suites'
    meta (expectations/suites/*.json: the rules' one home)."""
    import schemas
    from expectations.catalogue import suite

    out = {}
    for stream in schemas.STREAM_NAMES:
        for exp in suite(stream)["expectations"]:
            meta = exp["meta"]
            out.setdefault(meta["rule_id"], RuleMeaning(
                meta.get("name_zh") or meta["rule_id"], meta.get("description_zh") or "",
                meta["description"]))
    return out


@functools.cache
def stream_names() -> dict[str, str]:
    """stream -> its Chinese name (the suite's meta)."""
    import schemas
    from expectations.catalogue import suite

    return {s: suite(s)["meta"].get("name_zh") or s for s in schemas.STREAM_NAMES}


def _stream(stream: str) -> str:
    zh = stream_names().get(stream, stream)
    return stream if zh == stream else f"{stream}（{zh}）"


def figure(value: float | None, unit: str, lang: str = "zh") -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "hours":
        return f"{value:.1f} 小时" if lang == "zh" else f"{value:.1f} h"
    return f"{value:g}"


def _q(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _where(o: Observation, region_name: str) -> tuple[str, str]:
    if o.region_code is None:
        return "", ""
    zh_level, en_level = LEVELS.get(o.region_level or "", ("", ""))
    return (f"{region_name}（{o.region_code}，{zh_level}）{o.period} ",
            f"{region_name} ({o.region_code}, {en_level}) {o.period}: ")


def _what(o: Observation, region_name: str) -> tuple[str, str]:
    """What is measured, in both languages (the sentence's subject)."""
    zh_where, en_where = _where(o, region_name)
    c = o.context
    if o.kind == "pass_rate":
        name = rule_meanings().get(o.subject)
        name_zh = f" {name.name_zh}" if name and name.name_zh != o.subject else ""
        stream_zh = stream_names().get(c["stream"], c["stream"])
        return (f"{zh_where}质量规则 {o.subject}{name_zh}（{stream_zh}）通过率",
                f"{en_where}pass rate of quality rule {o.subject} ({c['stream']})")
    if o.kind in ("target_miss", "anomaly"):
        zh, en = NAMES.get(o.subject, (o.subject, o.subject))
        return f"{zh_where}{o.subject} {zh}", f"{en_where}{o.subject} {en}"
    if o.kind == "silence":
        return (f"数据流 {_stream(o.subject)} 距最后一条记录",
                f"time since the last record of stream {o.subject}")
    return f"数据流 {_stream(o.subject)} 的死信", f"dead letters of stream {o.subject}"


def _meaning(o: Observation) -> tuple[str, str]:
    """What the rule behind the alert means, one sentence each (empty if unknown)."""
    if o.kind == "pass_rate":
        m = rule_meanings().get(o.subject)
        if m is None:
            return "", ""
        zh = m.description_zh or m.description
        return f"规则说明：{zh}。", f" Rule {o.subject}: {m.description}."
    if o.kind in ("target_miss", "anomaly") and o.subject in DEFINITIONS:
        return (f"指标口径：{DEFINITIONS[o.subject]}。",
                f" {o.subject} = {DEFINITIONS[o.subject]}.")
    return "", ""


def _contributors(o: Observation) -> tuple[str, str]:
    """The members contributing most to a target miss's shortfall (when the
    warehouse has indicator_breakdown; alerting/contributors.py)."""
    members = o.context.get("contributors") or []
    if not members:
        return "", ""
    what_zh = {"institution": "机构", "matter": "事项"}
    zh = "、".join(f"{m.name or m.code}（{m.code}，差 {m.shortfall:.0f}）" for m in members)
    en = ", ".join(f"{m.name or m.code} ({m.code}, short by {m.shortfall:.0f})" for m in members)
    dims = {m.dimension for m in members}
    label = "、".join(what_zh.get(d, d) for d in sorted(dims))
    return f"缺口最大的{label}：{zh}。", f" Largest contributors to the shortfall: {en}."


def _detail(o: Observation) -> tuple[str, str]:
    c = o.context
    if o.kind == "pass_rate":
        return (f"（检查 {c['checked']} 条，不合格 {c['failed']} 条）",
                f" ({c['failed']} of {c['checked']} records failed)")
    if o.kind == "anomaly":
        median = figure(c["median"], o.unit)
        return (f"（前 {c['history']} 个月中位数 {median}，稳健 z 值 {c['z']:.1f}）",
                f" (median of the previous {c['history']} months {median}, robust z {c['z']:.1f})")
    if o.kind == "silence":
        last = c["last_seen"]
        if last is None:
            return "（从未收到记录）", " (no record ever received)"
        stamp = last.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"（最后记录 {stamp}）", f" (last record {stamp})"
    if o.kind == "dead_letters":
        share = figure(c["share"], "ratio")
        return (f"（运行 {c['run_id']}：读取 {c['read']} 条，死信 {c['dead']} 条，占 {share}）",
                f" (run {c['run_id']}: {c['dead']} of {c['read']} records read, {share})")
    return "", ""


def _bound_words(o: Observation) -> tuple[str, str]:
    if o.kind == "target_miss":
        return "目标", "target"
    if o.kind == "anomaly":
        return "异常界限", "anomaly bound"
    return "阈值", "threshold"


def texts(o: Observation, state: str, region_name: str) -> tuple[str, str, str, str]:
    """(title_zh, title_en, text_zh, text_en)."""
    if o.kind == calendar_check.KIND:
        return calendar_check.texts(o, state)
    kind_zh, kind_en = KIND_NAMES[o.kind]
    what_zh, what_en = _what(o, region_name)
    obs_zh, obs_en = figure(o.observed, o.unit, "zh"), figure(o.observed, o.unit, "en")
    thr_zh, thr_en = figure(o.threshold, o.unit, "zh"), figure(o.threshold, o.unit, "en")
    bound_zh, bound_en = _bound_words(o)
    detail_zh, detail_en = _detail(o)
    mean_zh, mean_en = _meaning(o)
    place = f"{region_name} {o.period}" if o.region_code else o.subject
    if state == FIRING:
        side_zh, side_en = ("低于", "below") if o.below else ("超过", "above")
        who_zh, who_en = _contributors(o)
        return (f"【医保数据质量告警】{kind_zh}｜{place}",
                f"[Yibao DQ alert] {kind_en} | {place}",
                f"{what_zh}为 {obs_zh}，{side_zh}{bound_zh} {thr_zh}{detail_zh}。{who_zh}{mean_zh}",
                f"{what_en} is {obs_en}, {side_en} the {bound_en} {thr_en}{detail_en}."
                f"{who_en}{mean_en}")
    return (f"【已恢复】{kind_zh}｜{place}",
            f"[Resolved] {kind_en} | {place}",
            f"已恢复：{what_zh}为 {obs_zh}，已回到{bound_zh} {thr_zh} 以内{detail_zh}。{mean_zh}",
            f"Resolved: {what_en} is {obs_en}, back within the {bound_en} {thr_en}{detail_en}."
            f"{mean_en}")


def _region_filter(o: Observation) -> str:
    """quality_failures rows of a region: a pooling region holds its counties."""
    code = _q(o.region_code)
    if o.region_level == "province":
        return f"region_code LIKE {_q(o.region_code[:2] + '%')}"
    if o.region_level == "pooling":
        return (f"(region_code = {code} OR region_code IN"
                f" (SELECT region_code FROM dim_region WHERE pooling_code = {code}))")
    return f"region_code = {code}"


def drilldown_sql(o: Observation, run_id: str | None) -> str:
    if o.kind == calendar_check.KIND:
        return calendar_check.drilldown_sql(o, run_id)
    c = o.context
    if o.kind == "pass_rate":
        return ("SELECT stream, record_key, rule_id, region_code, business_date, details\n"
                "FROM quality_failures\n"
                f"WHERE pipeline = 'nightly' AND rule_id = {_q(o.subject)} AND {_region_filter(o)}\n"
                f"  AND business_date BETWEEN DATE '{c['period_start']}'"
                f" AND DATE '{c['period_end']}'\n"
                "ORDER BY business_date, record_key\nLIMIT 200")
    if o.kind == "target_miss" and o.subject in BREAKDOWN:
        # Down to the institutions / matters behind the miss, largest shortfall first.
        return ("SELECT shortfall_rank, dimension, member_code, member_name, numerator, denominator,\n"
                "       value, target, shortfall, shortfall_share, region_value, region_shortfall\n"
                "FROM v_indicator_shortfall\n"
                f"WHERE indicator_code = {_q(o.subject)} AND region_code = {_q(o.region_code)}\n"
                f"  AND period_type = {_q(c['period_type'])} AND pipeline = {_q(c['pipeline'])}\n"
                f"  AND period_start = DATE '{c['period_start']}' AND period_end = DATE '{c['period_end']}'\n"
                "ORDER BY shortfall_rank")
    if o.kind in ("target_miss", "anomaly"):
        period = (f"period_start = DATE '{c['period_start']}'" if o.kind == "target_miss"
                  else f"period_start <= DATE '{c['period_start']}'")
        return ("SELECT indicator_code, region_code, period_type, period_start, period_end,\n"
                "       numerator, denominator, value, target, meets_target, run_id\n"
                "FROM indicator_values\n"
                f"WHERE indicator_code = {_q(o.subject)} AND region_code = {_q(o.region_code)}\n"
                f"  AND period_type = {_q(c['period_type'])} AND pipeline = {_q(c['pipeline'])}"
                f" AND {period}\nORDER BY period_start DESC")
    if o.kind == "silence":
        return ("SELECT r.run_id, r.pipeline, r.status, r.started_at, r.as_of, s.read, s.accepted\n"
                "FROM pipeline_run_streams AS s JOIN pipeline_runs AS r ON r.run_id = s.run_id\n"
                f"WHERE s.stream = {_q(o.subject)}\nORDER BY r.started_at DESC\nLIMIT 30")
    return ("SELECT stream, source, error, size, sha256, quarantine_path, received_at\n"
            "FROM dead_letters\n"
            f"WHERE run_id = {_q(c['run_id'])} AND stream = {_q(o.subject)}\n"
            "ORDER BY received_at\nLIMIT 200")
