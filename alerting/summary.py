"""The one log line an evaluation writes.

The alerts themselves go to the alert channels and dq_alerts; the log (a
nightly's stderr) gets one line saying how many were raised, of which kind,
where they went and which channel failed:

    alerts for run 5f…: 3 raised (2 target_miss, 1 pass_rate), 1 suppressed;
    delivered to log, ding

WARNING when something was raised or resolved, ERROR when a channel missed
an alert, INFO when there was nothing to say.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from alerting.model import FIRING, Alert

ERROR_CHARS = 120  # per failed channel: the full text is in dq_alerts.channels


@dataclass(frozen=True)
class Summary:
    run_id: str
    observations: int  # conditions evaluated (breached or not)
    raised: dict[str, int] = field(default_factory=dict)  # kind -> firing alerts sent
    resolved: dict[str, int] = field(default_factory=dict)  # kind -> recoveries sent
    suppressed: int = 0  # still firing, within the quiet period
    delivered_to: tuple[str, ...] = ()  # channels that took at least one alert
    failed: dict[str, tuple[int, str]] = field(default_factory=dict)  # channel -> (missed, error)

    @property
    def level(self) -> int:
        if self.failed:
            return logging.ERROR
        return logging.WARNING if self.raised or self.resolved else logging.INFO

    def line(self) -> str:
        def counts(by_kind: dict[str, int], what: str) -> str:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items(), key=lambda kv: -kv[1]))
            return f"{sum(by_kind.values())} {what}" + (f" ({kinds})" if kinds else "")

        parts = [counts(self.raised, "raised")]
        if self.resolved:
            parts.append(counts(self.resolved, "resolved"))
        if self.suppressed:
            parts.append(f"{self.suppressed} suppressed")
        text = f"alerts for run {self.run_id}: " + ", ".join(parts)
        if not (self.raised or self.resolved or self.suppressed):
            text += f" ({self.observations} conditions checked)"
        if self.delivered_to:
            text += "; delivered to " + ", ".join(self.delivered_to)
        for channel, (missed, error) in self.failed.items():
            error = error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 1] + "…"
            text += f"; NOT delivered to {channel} ({missed} alerts; {error})"
        return text


def summarize(run_id: str, observations: int, alerts: Sequence[Alert]) -> Summary:
    raised, resolved = Counter(), Counter()
    delivered: dict[str, None] = {}
    failed: dict[str, tuple[int, str]] = {}
    for a in alerts:
        if a.suppressed:
            continue
        (raised if a.state == FIRING else resolved)[a.kind] += 1
        for c in a.channels:
            if c["ok"]:
                delivered[c["channel"]] = None
            else:
                missed = failed.get(c["channel"], (0, ""))[0]
                failed[c["channel"]] = (missed + 1, c["error"] or "")
    return Summary(run_id, observations, dict(raised), dict(resolved),
                   sum(a.suppressed for a in alerts), tuple(delivered), failed)
