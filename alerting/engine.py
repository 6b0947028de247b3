"""evaluate(): checks -> debounce -> delivery -> dq_alerts."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alerting.channels import deliver
from alerting.checks import CHECKS
from alerting.config import alert_config
from alerting.debounce import key_states, plan
from alerting.messages import drilldown_sql, texts
from alerting.model import Alert, Observation
from alerting.store import Store
from alerting.summary import summarize

log = logging.getLogger("alerting")


def evaluate(
    warehouse: Any,
    run_id: str | None = None,
    config: Any = None,
    now: dt.datetime | None = None,
    *,
    last_event_times: Mapping[str, dt.datetime] | None = None,
    reference_dir: str | Path | None = None,
) -> list[Alert]:
    """Evaluate the alert checks on a run's output; send and record alerts.

    ``warehouse``: a DuckDB path, ``duckdb:///…`` or ``bigquery://PROJECT/DATASET``
    URI, DuckDBWarehouse, BigQueryWarehouse or DuckDB connection.  ``run_id``: default the latest succeeded (or running
    streaming) run.  ``config``: Config, dict (whole or the ``alerts``
    section), YAML path or None (shipped defaults).  ``now``: an aware
    instant (default: the clock).  ``last_event_times``: stream -> max event
    time, when the caller knows it (streaming firings).

    Every month the run published is evaluated (each check's
    ``recent_months`` can narrow that); provisional indicator rows are not.

    Returns the alerts written to dq_alerts this time: fired, suppressed and
    resolved.  Delivery failures are recorded in ``Alert.channels`` and
    dq_alerts.channels, never raised; a broken warehouse or config raises.
    The log gets one line (alerting/summary.py), not one per alert.
    """
    cfg = alert_config(config)
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with Store.open(warehouse) as store:
        run = store.run(run_id)
        observations = [
            o
            for kind, check in CHECKS.items() if cfg.enabled(kind)
            for o in check(store, run, cfg.check(kind), now, last_event_times=last_event_times)
        ]
        names = _region_names(store, reference_dir)
        states = key_states(store.sent_rows())
        alerts, down = [], {}  # channels that failed every attempt: not retried per alert
        for o in observations:
            if o.breached and not o.recent:
                continue  # an old month still wrong: it fired when it was recent
            channels = cfg.channels(o.kind)
            p = plan(o.breached, states.get(o.key), list(channels), cfg.quiet_seconds(o.kind), now)
            if p is None:
                continue
            alert = _alert(o, p.state, names, run["run_id"], now, p.suppressed)
            if not p.suppressed:
                alert.channels = deliver(alert, {c: channels[c] for c in p.channels}, cfg.delivery,
                                         down=down)
            alerts.append(alert)
        store.append_alerts([a.row() for a in alerts])
    summary = summarize(run["run_id"], len(observations), alerts)
    log.log(summary.level, "%s", summary.line())
    return alerts


def _alert(o: Observation, state: str, names: dict[str, str], run_id: str, now: dt.datetime,
           suppressed: bool) -> Alert:
    region_name = names.get(o.region_code or "", o.region_code or "")
    title_zh, title_en, text_zh, text_en = texts(o, state, region_name)
    return Alert(str(uuid.uuid4()), now, state, o, region_name, title_zh, title_en, text_zh,
                 text_en, drilldown_sql(o, run_id), run_id, suppressed)


def _region_names(store: Store, reference_dir) -> dict[str, str]:
    """dim_region (what the run published), else the reference data."""
    names = store.region_names()
    if names:
        return names
    try:
        import reference

        return {code: r.name for code, r in reference.load(reference_dir).regions.items()}
    except Exception as exc:  # noqa: BLE001 - names are a nicety: codes still identify regions
        log.warning("region names unavailable (%s); messages show codes", exc)
        return {}

