"""``yibao alerts``: evaluate a run's alerts, or send a sample alert.

    yibao alerts evaluate --warehouse URI [--run-id ID] [--config FILE] [--now T]
                          (URI: duckdb:///path/file.duckdb or bigquery://PROJECT/DATASET)
    yibao alerts test --channel log|webhook|dingtalk|wecom|email
                      [--url URL] [--secret S] [--smtp HOST:PORT --to ADDR [--from ADDR]]
                      [--config FILE]

``test`` takes the first channel of that type from the config and lets the
flags override it, so a deployment can check its real configuration
(secrets from ``*_env`` variables) or a URL given by hand.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import uuid

from alerting.channels import deliver
from alerting.config import CHANNEL_TYPES, alert_config, clean_channel
from alerting.engine import evaluate
from alerting.messages import drilldown_sql, texts
from alerting.model import FIRING, Alert, Observation
from alerting.summary import ERROR_CHARS, summarize
from pipelines.errors import UsageError
from transforms.timeutil import parse_instant


def sample_alert(now: dt.datetime) -> Alert:
    """A made-up pass-rate alert (兴庆区, T04, May 2023)."""
    o = Observation("pass_rate", "T04", "640104", "county", "2023-05", 0.62, 0.95, True, True,
                    "ratio", {"stream": "settlement", "checked": 1200, "failed": 456,
                              "period_type": "MONTH", "period_start": dt.date(2023, 5, 1),
                              "period_end": dt.date(2023, 5, 31)})
    title_zh, title_en, text_zh, text_en = texts(o, FIRING, "兴庆区")
    return Alert(str(uuid.uuid4()), now, FIRING, o, "兴庆区", "【测试】" + title_zh,
                 "[TEST] " + title_en, text_zh, text_en, drilldown_sql(o, None), None)


def _test(args) -> int:
    cfg = alert_config(args.config)
    spec = next((dict(s) for s in cfg.channels().values() if s.get("type") == args.channel), {})
    spec["type"] = args.channel
    for key in ("url", "secret"):
        if getattr(args, key):
            spec[key] = getattr(args, key)
    if args.smtp:
        host, _, port = args.smtp.rpartition(":")
        spec["host"], spec["port"] = host, int(port)
    if args.to:
        spec["to"] = args.to
    if args.sender:
        spec["from"] = args.sender
    results = deliver(sample_alert(dt.datetime.now(dt.UTC)), {args.channel: clean_channel(spec)},
                      cfg.delivery)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


def _evaluate(args) -> int:
    now = parse_instant(args.now) if args.now else None
    try:
        alerts = evaluate(args.warehouse, args.run_id, args.config, now)
    except Exception as e:  # no access to BigQuery, a missing dataset: one line
        from warehouse.reader import bigquery_failure

        why = bigquery_failure(e) if args.warehouse.startswith("bigquery://") else None
        if why is None:
            raise
        raise UsageError(f"{args.warehouse}: {why}") from None
    for a in alerts:
        missed_any = not all(c["ok"] for c in a.channels)
        status = "suppressed" if a.suppressed else "NOT DELIVERED" if missed_any else "sent"
        print(f"{a.state:8} {status:13} {a.text_zh}")
    print(f"{len(alerts)} alert rows written to dq_alerts")
    # A scheduler must see a channel that missed an alert (the rows are written
    # all the same, so the next evaluation re-sends nothing twice).
    if failed := summarize(args.run_id or "", 0, alerts).failed:
        sent = sum(not a.suppressed for a in alerts)
        missed = "; ".join(f"NOT delivered to {ch} ({n} of {sent} alerts; {error[:ERROR_CHARS]})"
                           for ch, (n, error) in failed.items())
        print(f"yibao alerts: {missed} — the alerts are in dq_alerts; "
              "check the channel with `yibao alerts test`", file=sys.stderr)
        return 1
    return 0


def alerts_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yibao alerts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="evaluate a run's alerts and send them")
    ev.add_argument("--warehouse", required=True,
                    help="duckdb:///path/file.duckdb, a path, or bigquery://PROJECT/DATASET")
    ev.add_argument("--run-id", default=None, help="default: the latest succeeded run")
    ev.add_argument("--config", default=None, help="YAML overriding pipelines/defaults.yaml")
    ev.add_argument("--now", default=None, help="evaluation instant, ISO 8601 (default now)")
    ev.set_defaults(func=_evaluate)
    te = sub.add_parser("test", help="send a sample alert through one channel")
    te.add_argument("--channel", required=True, choices=CHANNEL_TYPES)
    te.add_argument("--url", help="webhook / robot URL")
    te.add_argument("--secret", help="DingTalk signing secret (加签)")
    te.add_argument("--smtp", help="HOST:PORT of the SMTP server")
    te.add_argument("--to", action="append", help="recipient (repeatable)")
    te.add_argument("--from", dest="sender", help="sender address")
    te.add_argument("--config", default=None, help="YAML overriding pipelines/defaults.yaml")
    te.set_defaults(func=_test)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(alerts_main())
