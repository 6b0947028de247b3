"""The streaming job's writes, batched: what a bundle brings is written in
one go, with retries.

Each element is a ``Write`` (transforms/streaming.py): rows for one table,
and for a scoped table the scope they replace.  ``WriteToWarehouse`` buffers
a bundle's writes and flushes them when the bundle ends (never later: a
runner commits a bundle once ``finish_bundle`` returns, so nothing buffered
may outlive it) or when ``MAX_BATCH_ROWS`` are waiting.  A flush is one
connection and as few publishes as the scopes allow:

* key tables (indicator_values, quality_rule_results, pipeline_run_streams)
  merge by key, the later write of a key winning (a later pane of a day
  replaces the earlier; the key includes ``pipeline``, so stream rows never
  touch nightly ones);
* dead_letters merge by source (a message delivered twice leaves one row);
* quality_failures go one publish per scope (a pane's stream and day): a
  union of scopes is not one Scope.

Every write replaces by key or by scope, so repeating it is harmless: a
transient failure (DuckDB file locked by another process; BigQuery
concurrent-transaction aborts, rate limits, 5xx, timeouts) is retried with
exponential backoff and jitter, the same batch again.  Anything else fails
the bundle, which the runner retries.

DuckDB allows one writer per file: flushes from the job's threads take
turns on a process-wide lock.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import apache_beam as beam
import duckdb
import pyarrow as pa
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows

from transforms.context import month_end
from transforms.streaming import DAY_SECONDS, WINDOW_SLACK_DAYS, Write, day_start
from warehouse import open_warehouse
from warehouse.scope import Scope
from warehouse.tables import TABLES, arrow_schema

log = logging.getLogger(__name__)

_LOCKS: dict[str, threading.Lock] = defaultdict(threading.Lock)
RETRIES = 12
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 20.0
#: A bundle's buffer is flushed early once this many rows wait.
MAX_BATCH_ROWS = 50_000
#: Words of BigQuery errors that a retry of the same MERGE can get past
#: (a transaction aborted by a concurrent one, rate limits).
_TRANSIENT_WORDS = ("concurrent update", "aborted", "rate limit", "ratelimitexceeded",
                    "backenderror", "internalerror", "try again")


def is_transient(err: BaseException) -> bool:
    """Worth retrying the same write: it may succeed unchanged."""
    if isinstance(err, duckdb.IOException):  # the file is locked by another process
        return True
    try:
        from google.api_core import exceptions as gexc
    except ImportError:  # DuckDB-only install
        return False
    if isinstance(err, gexc.Aborted | gexc.TooManyRequests | gexc.ServiceUnavailable |
                  gexc.InternalServerError | gexc.GatewayTimeout | gexc.DeadlineExceeded |
                  gexc.RetryError):
        return True
    return isinstance(err, gexc.GoogleAPICallError) and any(
        w in str(err).lower() for w in _TRANSIENT_WORDS)


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): exponential, full jitter."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** attempt))


def arrow_rows(name: str, rows: list[dict]) -> pa.Table:
    """Rows -> an Arrow table of the warehouse table's columns they carry."""
    present = [f for f in arrow_schema(name) if f.name in rows[0]]
    return pa.Table.from_pylist(rows, schema=pa.schema(present))


def with_warehouse(uri: str, action: Callable, sleep: Callable[[float], None] = time.sleep) -> None:
    """``action(warehouse)`` in its own connection, taking turns with the
    job's other writes; transient errors are retried with backoff."""
    with _LOCKS[uri]:
        for attempt in range(RETRIES):
            try:
                with open_warehouse(uri) as wh:
                    action(wh)
                return
            except Exception as err:
                if attempt == RETRIES - 1 or not is_transient(err):
                    raise
                wait = backoff(attempt)
                log.info("warehouse write failed (%s); retry %d in %.2f s", err, attempt + 1, wait)
                sleep(wait)


def batch_publishes(writes: list) -> list[tuple[dict, dict]]:
    """Writes -> [(tables, scopes)], the publishes of one flush (module docstring)."""
    keyed: dict[str, dict[tuple, dict]] = defaultdict(dict)
    letters: dict[str, dict] = {}
    scoped: dict[tuple, tuple[dict, list]] = {}
    for w in writes:
        table = TABLES[w.table]
        if w.table == "dead_letters":
            letters.update((r["source"], r) for r in w.rows)
        elif table.write == "key":
            keyed[w.table].update((tuple(r[k] for k in table.key), r) for r in w.rows)
        else:  # a scoped table: the later write of a scope replaces the earlier
            frozen = (w.table, tuple(sorted((k, tuple(v)) for k, v in w.scope.items())))
            scoped[frozen] = (w.scope, w.rows)
    first_tables = {name: arrow_rows(name, list(rows.values())) for name, rows in keyed.items() if rows}
    first_scopes = {}
    if letters:
        first_tables["dead_letters"] = arrow_rows("dead_letters", list(letters.values()))
        first_scopes["dead_letters"] = Scope(values={"source": sorted(letters)})
    out = [(first_tables, first_scopes)] if first_tables else []
    for (name, _), (scope, rows) in scoped.items():
        out.append(({name: arrow_rows(name, rows)} if rows else {}, {name: Scope(values=scope)}))
    return out


def publish_writes(uri: str, run_id: str, writes: list) -> None:
    """One flush: every publish of the batch in one connection, retried as a whole."""
    publishes = batch_publishes(writes)
    if not publishes:
        return

    def write(wh):
        for tables, scopes in publishes:
            wh.publish(run_id, tables, scopes)

    with_warehouse(uri, write)


def upsert(uri: str, run_id: str, name: str, rows: list[dict], scope: dict | None = None) -> None:
    if rows or scope:
        publish_writes(uri, run_id, [Write(name, rows, scope)])


class WriteToWarehouse(beam.DoFn):
    """Writes -> batched publishes at the end of each bundle; yields
    (table name, rows) per write once flushed."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id

    def start_bundle(self):
        self.buffer, self.rows = [], 0

    def process(self, element):
        rows = [dict(r, run_id=self.run_id) for r in element.rows]
        self.buffer.append(element._replace(rows=rows))
        self.rows += len(rows)
        if self.rows >= MAX_BATCH_ROWS:
            yield from self._flush()

    def finish_bundle(self):
        for out in self._flush():
            yield GlobalWindows.windowed_value(out)

    def _flush(self):
        writes, self.buffer, self.rows = self.buffer, [], 0
        if writes:
            publish_writes(self.uri, self.run_id, writes)
        return [(w.table, len(w.rows)) for w in writes]


_WRITTEN = ReadModifyWriteStateSpec("written", PickleCoder())
WRITTEN = beam.DoFn.StateParam(_WRITTEN)
_WRITTEN_GC = TimerSpec("gc", TimeDomain.WATERMARK)
WRITTEN_GC = beam.DoFn.TimerParam(_WRITTEN_GC)


class WriteLatest(beam.DoFn):
    """Keyed by period ((group, period type, day)): (n, [Write]) firings of its
    totals, n growing with every change summed.  A runner may deliver two
    firings out of order, and two bundles of the batched sink may commit out
    of order: here one key's firings are written one after the other, and a
    firing older than the one written is dropped.

    The counter is forgotten (a watermark timer) a slack day after the
    period's totals are garbage-collected (its end + ``retention_days``,
    streaming.Totals): no firing of the period comes after that, and the
    counters of a job running for months stay bounded."""

    def __init__(self, uri: str, run_id: str, retention_days: int):
        self.uri, self.run_id, self.retention_days = uri, run_id, retention_days

    def process(self, element, written=WRITTEN, gc=WRITTEN_GC):
        (_, period_type, ordinal), (n, writes) = element
        if (written.read() or -1) >= n:
            return
        publish_writes(self.uri, self.run_id, [
            w._replace(rows=[dict(r, run_id=self.run_id) for r in w.rows]) for w in writes])
        written.write(n)
        start = dt.date.fromordinal(ordinal)
        last = start if period_type == "DAY" else month_end(start)
        # In Beam time, not dates: no calendar overflow near 9999-12-31 (unwindowable).
        gc.set(day_start(last) + (1 + self.retention_days + WINDOW_SLACK_DAYS) * DAY_SECONDS)
        yield from ((w.table, len(w.rows)) for w in writes)

    @on_timer(_WRITTEN_GC)
    def forget(self, written=WRITTEN):
        written.clear()
