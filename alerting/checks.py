"""The five alert checks, each reading what the evaluated run wrote.

Every check returns one Observation per subject it evaluated (breached or
not), so that a clear observation can resolve an open alert.  Scopes,
thresholds and switches come from the check's ``alerts:`` entry.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from alerting.anomaly import robust_z
from alerting.calendar_check import calendar_missing
from alerting.config import in_scope
from alerting.contributors import prefetch, top_contributors
from alerting.model import Observation, period_label
from alerting.store import Store, months_back


def _mark_recent(rows: list[dict], n: int | None) -> list[dict]:
    """Flags the rows of the run's last ``n`` months (by period_end): only
    those may fire (older months were judged when they were recent), but
    any row may resolve an open alert."""
    cutoff = months_back(max(r["period_end"] for r in rows), int(n) - 1) if n and rows else None
    for r in rows:
        r["_recent"] = cutoff is None or r["period_end"] >= cutoff
    return rows


def _in_period_scope(row: dict, spec: dict) -> bool:
    return (in_scope(row["period_type"], spec.get("period_types"))
            and in_scope(row["region_level"], spec.get("levels")))


def pass_rate(store: Store, run: dict, spec: dict, now: dt.datetime, **_) -> list[Observation]:
    rows = store.query(
        "SELECT rule_id, stream, region_code, region_level, period_type, period_start,"
        " period_end, checked, failed, pass_rate FROM quality_rule_results"
        " WHERE run_id = ? AND pass_rate IS NOT NULL AND checked >= ?",
        [run["run_id"], int(spec.get("min_checked") or 0)])
    rows = [r for r in rows
            if _in_period_scope(r, spec) and in_scope(r["rule_id"], spec.get("rules"))]
    out = []
    for r in _mark_recent(rows, spec.get("recent_months")):
        threshold = float((spec.get("by_region") or {}).get(
            r["region_code"], (spec.get("by_rule") or {}).get(r["rule_id"], spec["threshold"])))
        out.append(Observation(
            "pass_rate", r["rule_id"], r["region_code"], r["region_level"],
            period_label(r["period_type"], r["period_start"], r["period_end"]),
            r["pass_rate"], threshold, r["pass_rate"] < threshold, True, "ratio",
            {k: r[k] for k in ("stream", "checked", "failed", "period_type", "period_start",
                               "period_end")}, r["_recent"]))
    return out


def _indicator_rows(store: Store, run: dict, spec: dict) -> list[dict]:
    """The run's indicator values, final ones only: a provisional row (the
    period, or a due window deciding its numerator, still open at as_of —
    WAREHOUSE.md) says nothing yet, neither a miss nor a recovery.  Older
    warehouses have no provisional column: every row counts as final."""
    final = (" AND NOT coalesce(provisional, false)"
             if "provisional" in store.columns("indicator_values") else "")
    rows = store.query(
        "SELECT indicator_code, region_code, region_level, period_type, period_start, period_end,"
        " value, target, direction, meets_target, denominator, pipeline FROM indicator_values"
        " WHERE run_id = ? AND value IS NOT NULL" + final, [run["run_id"]])
    rows = [r for r in rows
            if _in_period_scope(r, spec) and in_scope(r["indicator_code"], spec.get("indicators"))]
    return _mark_recent(rows, spec.get("recent_months"))


def _indicator_context(r: dict) -> dict:
    return {k: r[k] for k in ("direction", "period_type", "period_start", "period_end",
                              "pipeline")}


def target_miss(store: Store, run: dict, spec: dict, now: dt.datetime, **_) -> list[Observation]:
    out = []
    rows = _indicator_rows(store, run, spec)
    # Only a recent miss can fire (engine.py): name contributors for those, in one query.
    prefetch(store, [r for r in rows if r["meets_target"] is False and r["_recent"]])
    for r in rows:
        if r["meets_target"] is None:
            continue
        context = _indicator_context(r)
        if not r["meets_target"] and r["_recent"]:
            context["contributors"] = top_contributors(store, r)
        out.append(Observation(
            "target_miss", r["indicator_code"], r["region_code"], r["region_level"],
            period_label(r["period_type"], r["period_start"], r["period_end"]),
            r["value"], r["target"], not r["meets_target"], r["direction"] != "<=", "ratio",
            context, r["_recent"]))
    return out


def anomaly(store: Store, run: dict, spec: dict, now: dt.datetime, **_) -> list[Observation]:
    """Each of the run's MONTH values against the previous ``history_months``
    MONTH values of the same indicator, region and pipeline.  Earlier months
    are other keys of indicator_values, so they are still there: that is the
    history (a re-run correcting an old month corrects the history too)."""
    rows = [r for r in _indicator_rows(store, run, spec) if r["period_type"] == "MONTH"
            and (r["denominator"] or 0) >= float(spec.get("min_denominator") or 0)]
    if not rows:
        return []
    history = defaultdict(list)
    for h in store.query(
            "SELECT indicator_code, region_code, pipeline, period_start, value"
            " FROM indicator_values WHERE period_type = 'MONTH' AND value IS NOT NULL"
            " AND pipeline = ? ORDER BY period_start", [rows[0]["pipeline"]]):
        history[(h["indicator_code"], h["region_code"])].append((h["period_start"], h["value"]))
    window, z_limit = int(spec["history_months"]), float(spec["z_threshold"])
    out = []
    for r in rows:
        series = history[(r["indicator_code"], r["region_code"])]
        earlier = [v for start, v in series
                   if months_back(r["period_start"], window) <= start < r["period_start"]]
        if len(earlier) < int(spec["min_history"]):
            continue  # too little history to call anything unusual
        z, median, spread = robust_z(r["value"], earlier, float(spec.get("min_spread") or 0))
        drop_is_bad = r["direction"] != "<="
        if spec.get("two_sided"):
            below = z < 0
        else:
            below = drop_is_bad
        bound = median - z_limit * spread if below else median + z_limit * spread
        breached = z <= -z_limit if below else z >= z_limit
        out.append(Observation(
            "anomaly", r["indicator_code"], r["region_code"], r["region_level"],
            period_label("MONTH", r["period_start"], r["period_end"]),
            r["value"], bound, breached, below, "ratio",
            {**_indicator_context(r), "median": median, "z": z, "history": len(earlier)},
            r["_recent"]))
    return out


def silence(store: Store, run: dict, spec: dict, now: dt.datetime,
            last_event_times: dict | None = None, **_) -> list[Observation]:
    """Hours since a stream's last record, measured at the run's as_of (a
    nightly over 2023 data asks whether the streams were alive then, not
    today; a streaming run has no as_of: ``now``).  The caller's max event
    time wins (a streaming firing knows it); otherwise the as_of of the last
    run whose ``read`` grew over the previous run of its pipeline — an upper
    bound of the last event time, so the silence is never overstated."""
    at = run.get("as_of") or now
    rows = store.query(
        "SELECT s.stream, r.pipeline, coalesce(r.as_of, r.started_at) AS seen_at, s.read"
        " FROM pipeline_run_streams s JOIN pipeline_runs r ON r.run_id = s.run_id"
        " WHERE r.status IN ('succeeded', 'running') ORDER BY r.started_at")
    last_seen: dict[str, dt.datetime | None] = {}
    first_run: dict[str, dt.datetime] = {}
    previous: dict[tuple[str, str], int] = {}
    for r in rows:
        first_run.setdefault(r["stream"], r["seen_at"])
        last_seen.setdefault(r["stream"], None)
        if r["read"] > previous.get((r["stream"], r["pipeline"]), 0):
            last_seen[r["stream"]] = max(filter(None, [last_seen[r["stream"]], r["seen_at"]]))
        previous[(r["stream"], r["pipeline"])] = r["read"]
    last_seen.update(last_event_times or {})
    out = []
    for stream, seen in sorted(last_seen.items()):
        if not in_scope(stream, spec.get("streams")):
            continue
        since = seen or first_run.get(stream)
        if since is None:
            continue
        hours = max(0.0, (at - since).total_seconds() / 3600)  # an event after as_of: 0
        limit = float((spec.get("by_stream") or {}).get(stream, spec["hours"]))
        out.append(Observation("silence", stream, None, None, None, hours, limit, hours >= limit,
                               False, "hours", {"last_seen": seen, "stream": stream}))
    return out


def dead_letters(store: Store, run: dict, spec: dict, now: dt.datetime, **_) -> list[Observation]:
    rows = store.query("SELECT stream, read, dead_lettered FROM pipeline_run_streams"
                       " WHERE run_id = ? ORDER BY stream", [run["run_id"]])
    max_count, max_share = spec.get("max_count"), spec.get("max_share")
    out = []
    for r in rows:
        if not in_scope(r["stream"], spec.get("streams")):
            continue
        dead, share = r["dead_lettered"], r["dead_lettered"] / r["read"] if r["read"] else 0.0
        context = {"stream": r["stream"], "read": r["read"], "dead": dead, "share": share,
                   "run_id": run["run_id"]}
        if max_count is not None and (dead > max_count or max_share is None):
            observed, limit, unit = dead, max_count, "count"
        else:
            observed, limit, unit = share, max_share, "ratio"
        breached = ((max_count is not None and dead > max_count)
                    or (max_share is not None and share > max_share))
        if limit is None:
            continue
        out.append(Observation("dead_letters", r["stream"], None, None, None, float(observed),
                               float(limit), breached, False, unit, context))
    return out


CHECKS = {"pass_rate": pass_rate, "target_miss": target_miss, "anomaly": anomaly,
          "silence": silence, "dead_letters": dead_letters, "calendar_missing": calendar_missing}
