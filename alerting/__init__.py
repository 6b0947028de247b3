"""Data-quality alerts (数据质量告警) for the data-quality owners.

After each nightly run (and on each streaming firing) ``evaluate`` reads
what the run wrote to the warehouse and checks, as configured in the
``alerts:`` section of pipelines/defaults.yaml (overridable by --config):

- ``pass_rate``: a quality rule's pass rate per region and month below its
  threshold (quality_rule_results);
- ``target_miss``: an indicator missing its target (indicator_values; final
  rows only, naming the institutions or matters that contribute most to the
  shortfall once indicator_breakdown exists);
- ``anomaly``: a month's value unusual against the region's own previous
  months (robust z-score, alerting/anomaly.py);
- ``silence``: a stream without new records for N hours before the run's as_of;
- ``dead_letters``: a run's dead letters above a count or share of read.
- ``calendar_missing``: a year in the run's scope without an official
  working-day calendar, its deadlines counted Monday–Friday
  (pipeline_runs.calendar_sources, alerting/calendar_check.py).

Every month the run published is evaluated.  Alerts are keyed by (check,
subject, region, period), debounced (alerting/debounce.py), sent in Chinese
and English — saying what the rule or indicator means — with a drill-down
SQL query to log / webhook / DingTalk / WeCom / e-mail (alerting/channels.py)
and recorded in dq_alerts — suppressed ones too, and one "resolved" row
when a condition clears.  The log gets one summary line per evaluation
(alerting/summary.py); channel credentials never reach a log line, an
exception text or dq_alerts (alerting/redact.py).

    from alerting import evaluate
    alerts = evaluate("var/warehouse.duckdb", run_id, load_config(path), now)

Command line: ``yibao alerts evaluate|test`` (alerting/cli.py).
"""
from alerting.engine import evaluate
from alerting.model import Alert, Observation
from alerting.summary import Summary, summarize

__all__ = ["Alert", "Observation", "Summary", "evaluate", "summarize"]
