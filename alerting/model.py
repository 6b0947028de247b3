"""What a check sees (Observation) and what the alerting writes and sends (Alert).

Checks report every subject they evaluated, breached or not (one shape, as
in Deequ / DQD results): a breach may raise an alert, a clear observation of
an open alert resolves it.  A subject not evaluated says nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

FIRING, RESOLVED = "firing", "resolved"
RESOLVED_SUFFIX = ".resolved"  # dq_alerts has no state column: kind "pass_rate.resolved"

Key = tuple[str, str, str, str]  # (kind, subject, region_code or "", period or "")


@dataclass(frozen=True)
class Observation:
    kind: str  # pass_rate | target_miss | anomaly | silence | dead_letters
    subject: str  # rule_id, indicator code or stream
    region_code: str | None
    region_level: str | None
    period: str | None  # label, see period_label
    observed: float | None
    threshold: float | None
    breached: bool
    below: bool  # a breach is observed < threshold (else observed > threshold)
    unit: str  # ratio | count | hours
    context: dict[str, Any] = field(default_factory=dict)  # figures for messages and SQL
    recent: bool = True  # within the check's recent_months: may fire (any may resolve)

    @property
    def key(self) -> Key:
        return (self.kind, self.subject, self.region_code or "", self.period or "")


def period_label(period_type: str, start: dt.date, end: dt.date) -> str:
    """DAY 2023-05-17, MONTH 2023-05, YTD '2023-05 YTD' (short, unambiguous)."""
    if period_type == "DAY":
        return start.isoformat()
    if period_type == "MONTH":
        return start.strftime("%Y-%m")
    if period_type == "YTD":
        return end.strftime("%Y-%m") + " YTD"
    return f"{period_type} {start}..{end}"


def kind_and_state(kind_column: str) -> tuple[str, str]:
    if kind_column.endswith(RESOLVED_SUFFIX):
        return kind_column[: -len(RESOLVED_SUFFIX)], RESOLVED
    return kind_column, FIRING


@dataclass
class Alert:
    alert_id: str
    raised_at: dt.datetime
    state: str  # firing | resolved
    observation: Observation
    region_name: str
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str
    sql: str
    run_id: str | None
    suppressed: bool = False
    channels: list[dict] = field(default_factory=list)  # one result per channel tried

    # Flat accessors: callers and tests read alerts like dq_alerts rows.
    kind = property(lambda self: self.observation.kind)
    subject = property(lambda self: self.observation.subject)
    region_code = property(lambda self: self.observation.region_code)
    region_level = property(lambda self: self.observation.region_level)
    period = property(lambda self: self.observation.period)
    observed = property(lambda self: self.observation.observed)
    threshold = property(lambda self: self.observation.threshold)
    key = property(lambda self: self.observation.key)

    @property
    def message(self) -> str:
        return f"{self.text_zh}\n{self.text_en}\n\n{self.sql}"

    @property
    def delivered(self) -> bool:
        return any(c["ok"] for c in self.channels)

    def row(self) -> dict:
        """The dq_alerts row."""
        return {
            "alert_id": self.alert_id,
            "raised_at": self.raised_at,
            "kind": self.kind + (RESOLVED_SUFFIX if self.state == RESOLVED else ""),
            "subject": self.subject,
            "region_code": self.region_code,
            "period": self.period,
            "observed": _finite(self.observed),
            "threshold": _finite(self.threshold),
            "message": self.message,
            "channels": json.dumps(self.channels, ensure_ascii=False),
            "suppressed": self.suppressed,
        }

    def payload(self) -> dict:
        """The generic webhook's JSON body."""
        return {
            "alert_id": self.alert_id,
            "raised_at": self.raised_at.isoformat(),
            "state": self.state,
            "kind": self.kind,
            "subject": self.subject,
            "region_code": self.region_code,
            "region_name": self.region_name,
            "region_level": self.region_level,
            "period": self.period,
            "observed": _finite(self.observed),
            "threshold": _finite(self.threshold),
            "unit": self.observation.unit,
            "title_zh": self.title_zh,
            "title_en": self.title_en,
            "message_zh": self.text_zh,
            "message_en": self.text_en,
            "sql": self.sql,
            "run_id": self.run_id,
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x
