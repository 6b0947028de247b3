"""``calendar_missing``: a year in the run's scope had no official
working-day calendar, so its deadlines (I21, I24, S03, S04) counted Monday
to Friday and are wrong around every holiday and 调休 make-up day.

Reads what the run recorded when it began (``pipeline_runs.calendar_sources``,
year -> config | chinesecalendar | weekdays; pipelines/config.py): one
observation per year, breached when the year was served by ``weekdays``, so
a later run with the year added to the config's ``calendar:`` resolves it.
A streaming job records no sources (its streamed indicators count no
working days) and gets no observation.
"""
from __future__ import annotations

import datetime as dt
import json

from alerting.model import FIRING, Observation
from alerting.store import Store

KIND = "calendar_missing"


def calendar_missing(store: Store, run: dict, spec: dict, now: dt.datetime,
                     **_) -> list[Observation]:
    if "calendar_sources" not in store.columns("pipeline_runs"):
        return []  # a warehouse older than the column
    rows = store.query("SELECT calendar_sources FROM pipeline_runs WHERE run_id = ?",
                       [run["run_id"]])
    raw = rows[0]["calendar_sources"] if rows else None
    sources = json.loads(raw) if isinstance(raw, str) else (raw or {})
    return [Observation(KIND, str(year), None, None, str(year), None, None,
                        source == "weekdays", False, "count",
                        {"year": int(year), "source": source, "run_id": run["run_id"]})
            for year, source in sorted(sources.items())]


def texts(o: Observation, state: str) -> tuple[str, str, str, str]:
    """(title_zh, title_en, text_zh, text_en) of a calendar_missing alert."""
    year = o.subject
    if state == FIRING:
        return (f"【医保数据质量告警】缺少官方工作日历｜{year}",
                f"[Yibao DQ alert] official working-day calendar missing | {year}",
                f"{year} 年没有官方工作日历（配置 calendar: 与 chinesecalendar 均未提供），"
                f"办结时限按周一至周五计算，节假日和调休前后的 I21、I24、S03、S04 不准确。"
                f"请把国务院办公厅 {year} 年节假日安排通知中的放假日期（holidays）和调休上班日期"
                f"（workdays）写入配置文件的 calendar: {year}:，然后重新运行。",
                f"{year} has no official working-day calendar (neither the config's calendar: "
                f"section nor chinesecalendar has it): deadlines counted Monday to Friday, so I21, "
                f"I24, S03 and S04 are wrong around holidays and make-up working days. Add "
                f"{year}'s holidays and workdays from the State Council notice under calendar: "
                f"{year}: in the config and run again.")
    return (f"【已恢复】缺少官方工作日历｜{year}",
            f"[Resolved] official working-day calendar missing | {year}",
            f"已恢复：{year} 年的工作日历来自 {o.context['source']}。",
            f"Resolved: {year}'s working days now come from {o.context['source']}.")


def drilldown_sql(o: Observation, run_id: str | None) -> str:
    """The run's recorded sources, and the recent runs' for comparison."""
    return ("SELECT run_id, pipeline, status, started_at, as_of, calendar_sources\n"
            "FROM pipeline_runs\n"
            "WHERE calendar_sources IS NOT NULL\n"
            "ORDER BY started_at DESC\nLIMIT 30")
