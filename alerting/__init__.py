"""Data-quality alerts (数据质量告警) for the data-quality owners.

After each nightly run (and on each streaming firing) ``evaluate`` reads
what the run wrote to the warehouse and checks, as configured in the
``alerts:`` section of pipelines/defaults.yaml (overridable by --config):

- ``pass_rate``: a quality rule's pass rate per region and month below its
  threshold (quality_rule_results);
- ``target_miss``: an indicator missing its target (indicator_values);
- ``anomaly``: a month's value unusual against the region's own previous
  months (robust z-score, alerting/anomaly.py);
- ``silence``: a stream without new records for N hours;
- ``dead_letters``: a run's dead letters above a count or share of read.

Alerts are keyed by (check, subject, region, period), debounced
(alerting/debounce.py), sent in Chinese and English with a drill-down SQL
query to log / webhook / DingTalk / WeCom / e-mail (alerting/channels.py)
and recorded in dq_alerts — suppressed ones too, and one "resolved" row
when a condition clears.

    from alerting import evaluate
    alerts = evaluate("var/warehouse.duckdb", run_id, load_config(path), now)

Command line: ``yibao alerts evaluate|test`` (alerting/cli.py).
"""
from alerting.engine import evaluate
from alerting.model import Alert, Observation

__all__ = ["Alert", "Observation", "evaluate"]
