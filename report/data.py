"""Read-only queries behind the report and the notebook charts.

The SQL is written once, in DuckDB's dialect, and read through
warehouse/reader.py, so the same functions read a DuckDB file or a BigQuery
dataset (``bigquery://PROJECT/DATASET``) and return the same values.

Everything reads the latest nightly values (``pipeline = 'nightly'``):
indicator_values keeps one row per key and pipeline, the one the latest
publish wrote, so "latest" needs no ranking; stream rows are left out so a
half-finished day never leaks into a self-evaluation.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from warehouse import duckdb_path  # noqa: F401 - re-exported for report.cli
from warehouse.reader import Reader, open_reader

NIGHTLY = "nightly"
DEFAULT_WAREHOUSE = "duckdb:///var/warehouse.duckdb"
VALUE_COLUMNS = (
    "indicator_code, region_code, region_level, period_type, period_start, period_end,"
    " numerator, denominator, value, target, direction, meets_target, components,"
    " as_of, run_id, computed_at, provisional"
)


@contextmanager
def reading(source) -> Iterator[Reader]:
    """A Reader (warehouse/reader.py) on ``source``: a Reader, DuckDB
    connection or warehouse object (borrowed, left open) or a URI / path —
    ``duckdb:///…`` or ``bigquery://PROJECT/DATASET`` — opened read-only and
    closed afterwards."""
    reader = open_reader(source)
    try:
        yield reader
    finally:
        reader.close()


def rows(con, sql: str, params=()) -> list[dict]:
    """``sql`` (DuckDB's dialect, ``?`` parameters) on a Reader or a DuckDB connection."""
    reader = con if isinstance(con, Reader) else open_reader(con)
    return reader.rows(sql, list(params))


def columns(con, table: str) -> set[str]:
    """A table's or view's column names; empty when it does not exist (an
    older warehouse). Use this, not information_schema: BigQuery answers it
    from its tables API, without a query job."""
    reader = con if isinstance(con, Reader) else open_reader(con)
    return reader.columns(table)


# --- periods and regions -----------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A report month and its year to date (INDICATORS.md "Periods")."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not m or not 1 <= int(m[2]) <= 12:
            raise ValueError(f"period must be YYYY-MM, not {text!r}")
        return cls(int(m[1]), int(m[2]))

    @property
    def label(self) -> str:
        return f"{self.year}-{self.month:02d}"

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def end(self) -> dt.date:
        return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def bounds(self, period_type: str) -> tuple[dt.date, dt.date]:
        """(period_start, period_end) of the MONTH or the YTD row."""
        start = self.start if period_type == "MONTH" else dt.date(self.year, 1, 1)
        return start, self.end


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # county | pooling | province
    parent_code: str | None = None
    pooling_code: str | None = None


def region(con, code: str) -> Region:
    found = rows(
        con,
        "SELECT region_code AS code, name, level, parent_code, pooling_code"
        " FROM dim_region WHERE region_code = ?",
        [code],
    )
    if found:
        return Region(**found[0])
    level = rows(
        con, "SELECT max(region_level) AS level FROM indicator_values WHERE region_code = ?", [code]
    )[0]["level"]
    if level is None:
        raise LookupError(f"region {code} is neither in dim_region nor in indicator_values")
    return Region(code, code, level)


def peers(con, r: Region) -> list[Region]:
    """Regions shown side by side: a province's pooling regions, a pooling
    region's counties, a county with the other counties of its pooling region."""
    if r.level == "province":
        where, params = "level = 'pooling' AND parent_code = ?", [r.code]
    elif r.level == "pooling":
        where, params = "level = 'county' AND coalesce(pooling_code, parent_code) = ?", [r.code]
    else:
        where, params = "level = 'county' AND pooling_code = ?", [r.pooling_code or r.parent_code]
    found = rows(
        con,
        "SELECT region_code AS code, name, level, parent_code, pooling_code"
        f" FROM dim_region WHERE {where} ORDER BY region_code",
        params,
    )
    return [Region(**f) for f in found]


def region_filter(r: Region, column: str = "region_code") -> tuple[str, list]:
    """SQL condition: records attributed to the region or anything inside it."""
    if r.level == "province":
        return f"left({column}, 2) = left(?, 2)", [r.code]
    if r.level == "pooling":
        return (
            f"({column} = ? OR {column} IN (SELECT region_code FROM dim_region"
            " WHERE pooling_code = ?))",
            [r.code, r.code],
        )
    return f"{column} = ?", [r.code]


# --- indicator values ---------------------------------------------------------


def values(con, region_codes: list[str], period: Period, period_type: str) -> list[dict]:
    start, end = period.bounds(period_type)
    marks = ", ".join("?" * len(region_codes))
    return rows(
        con,
        f"SELECT {VALUE_COLUMNS} FROM indicator_values WHERE pipeline = ?"
        f" AND region_code IN ({marks}) AND period_type = ?"
        " AND period_start = ? AND period_end = ?"
        " ORDER BY region_code, indicator_code",
        [NIGHTLY, *region_codes, period_type, start, end],
    )


def trend(con, region_code: str, year: int, indicator: str | None = None) -> list[dict]:
    """MONTH and YTD rows of a year, every month the warehouse holds."""
    extra, params = ("AND indicator_code = ?", [indicator]) if indicator else ("", [])
    return rows(
        con,
        f"SELECT {VALUE_COLUMNS} FROM indicator_values WHERE pipeline = ?"
        " AND region_code = ? AND period_type IN ('MONTH', 'YTD')"
        " AND period_start >= ? AND period_end <= ?"
        " AND (period_type = 'MONTH' OR period_start = ?)"
        f" {extra} ORDER BY indicator_code, period_end, period_type",
        [
            NIGHTLY,
            region_code,
            dt.date(year, 1, 1),
            dt.date(year, 12, 31),
            dt.date(year, 1, 1),
            *params,
        ],
    )


# --- data quality ----------------------------------------------------------------


def rule_results(con, region_code: str, period: Period, period_type: str) -> list[dict]:
    """Every rule's checked / failed / pass_rate, worst first."""
    start, end = period.bounds(period_type)
    return rows(
        con,
        "SELECT q.rule_id, q.stream, d.severity, d.description, q.checked, q.failed,"
        " q.pass_rate, q.run_id FROM quality_rule_results AS q"
        " LEFT JOIN dim_quality_rule AS d ON d.rule_id = q.rule_id"
        " WHERE q.pipeline = 'nightly' AND q.region_code = ? AND q.period_type = ?"
        " AND q.period_start = ? AND q.period_end = ?"
        " ORDER BY q.failed DESC, q.pass_rate NULLS LAST, q.rule_id",
        [region_code, period_type, start, end],
    )


def failure_examples(
    con, r: Region, rule_ids: list[str], period: Period, per_rule: int = 3
) -> list[dict]:
    """A few failing records per rule in the year to date, newest first
    (the month's come first); details are masked by the pipeline."""
    if not rule_ids:
        return []
    cond, params = region_filter(r)
    start, end = period.bounds("YTD")
    marks = ", ".join("?" * len(rule_ids))
    return rows(
        con,
        "SELECT rule_id, stream, record_key, region_code, business_date,"
        " details FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY rule_id"
        "   ORDER BY business_date DESC NULLS LAST, record_key) AS n"
        f"  FROM quality_failures WHERE pipeline = 'nightly' AND {cond} AND rule_id IN ({marks})"
        "  AND business_date BETWEEN ? AND ?)"
        " WHERE n <= ? ORDER BY rule_id, n",
        [*params, *rule_ids, start, end, per_rule],
    )


# --- provenance --------------------------------------------------------------------


def runs(con, run_ids: list[str]) -> list[dict]:
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    return rows(
        con,
        "SELECT run_id, pipeline, runner, started_at, finished_at, status, as_of,"
        " options, error FROM pipeline_runs"
        f" WHERE run_id IN ({marks}) ORDER BY started_at DESC",
        run_ids,
    )


def run_streams(con, run_ids: list[str]) -> list[dict]:
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    return rows(
        con,
        "SELECT run_id, stream, read, accepted, duplicates, dead_lettered,"
        " late_dropped, quality_failures FROM pipeline_run_streams"
        f" WHERE run_id IN ({marks}) ORDER BY run_id, stream",
        run_ids,
    )


def latest_nightly_run(con) -> dict | None:
    """The newest nightly run of any status: a failed newer run is worth a warning."""
    found = rows(
        con,
        "SELECT run_id, status, started_at, as_of FROM pipeline_runs"
        " WHERE pipeline = ? ORDER BY started_at DESC LIMIT 1",
        [NIGHTLY],
    )
    return found[0] if found else None
