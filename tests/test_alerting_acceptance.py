"""Issue 10 acceptance: on generated data with an injected drop in one
county's settlement quality for one month, with only the rule pass-rate
alerts enabled, exactly that county-month alert fires among the county alerts.

Generate a small data set, break T04 (the amount balance) on every
settlement of the busiest county-month by rewriting the Avro records, run
the nightly pipeline into a temporary DuckDB, evaluate.  Skipped until the
generator (``python -m datagen``) exists.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from alerting import evaluate

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONTHS = "2023-01..2023-04"
AS_OF = "2023-04-30T23:59:59+08:00"


def _month(ts: dt.datetime) -> str:
    return ts.astimezone(SHANGHAI).strftime("%Y-%m")


def _county_months(files: list[Path], counties: set[str]) -> Counter:
    import fastavro

    counts = Counter()
    for path in files:
        try:
            with path.open("rb") as fh:
                for rec in fastavro.reader(fh):
                    if rec.get("insu_admdvs") in counties and "medfee_sumamt" in rec:
                        counts[(rec["insu_admdvs"], _month(rec["setl_time"]))] += 1
        except Exception:  # noqa: BLE001 - deliberately damaged files are the pipeline's business
            continue
    return counts


def _break_balance(files: list[Path], county: str, month: str) -> int:
    """+100.00 on medfee_sumamt (−100.00 on a reversal, keeping T03's sign):
    fund + account + cash + hospital no longer add up, so T04 fails.
    Identical duplicate deliveries stay identical (same rewrite)."""
    import fastavro

    changed = 0
    for path in files:
        try:
            with path.open("rb") as fh:
                reader = fastavro.reader(fh)
                schema, codec = reader.writer_schema, reader.codec
                records = list(reader)
        except Exception:  # noqa: BLE001 - leave damaged files as they are
            continue
        hit = False
        for rec in records:
            if (rec.get("insu_admdvs") == county and "medfee_sumamt" in rec
                    and _month(rec["setl_time"]) == month):
                delta = Decimal("100.00") if rec["refd_setl_flag"] == "0" else Decimal("-100.00")
                rec["medfee_sumamt"] += delta
                changed += 1
                hit = True
        if hit:
            with path.open("wb") as fh:
                fastavro.writer(fh, schema, records, codec=codec)
    return changed


def test_injected_county_month_drop_fires_exactly_that_alert(tmp_path):
    import reference
    from pipelines import nightly

    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "datagen", "--out", str(data), "--seed", "7",
                    "--persons", "3000", "--months", MONTHS], check=True)
    counties = {c.code for c in reference.load(data / "reference").counties}
    files = sorted((data / "settlement").glob("*.avro"))
    (county, month), n = _county_months(files, counties).most_common(1)[0]
    assert n >= 40, "too few settlements to see a drop; raise --persons"
    assert _break_balance(files, county, month) == n

    warehouse = tmp_path / "wh.duckdb"
    run_id = nightly.run(["--input", str(data), "--warehouse", f"duckdb:///{warehouse}",
                          "--as-of", AS_OF, "--months", MONTHS, "--no_alerts"])

    only_pass_rate = {
        "pass_rate": {"enabled": True, "levels": "all", "rules": "all", "threshold": 0.5,
                      "min_checked": 20, "recent_months": None, "period_types": ["MONTH"]},
        **{k: {"enabled": False} for k in ("target_miss", "anomaly", "silence", "dead_letters")},
        "channels": {"log": {"type": "log"}},
    }
    now = dt.datetime(2023, 5, 1, 2, tzinfo=dt.UTC)
    alerts = evaluate(warehouse, run_id, only_pass_rate, now)

    assert {a.kind for a in alerts} == {"pass_rate"}
    county_alerts = {(a.subject, a.region_code, a.period) for a in alerts
                     if a.region_level == "county"}
    assert county_alerts == {("T04", county, month)}
    (alert,) = [a for a in alerts if a.region_level == "county"]
    assert alert.observed < 0.5 and alert.delivered and not alert.suppressed
    assert alert.region_name == reference.load(data / "reference").regions[county].name
