"""Issue 15, "Working days after 2026": chinesecalendar (newest release)
knows 2004–2026 only; "from 1 January 2027 deadlines silently fall back to
Monday–Friday, which is wrong around every holiday".  The operator supplies
the official calendar per year in the YAML config; it wins over the
package, pipeline_runs records which source served each year, and a year
without an official calendar raises a calendar_missing alert.

The 2027 calendar below is made up for the tests (shaped like a State
Council notice: a Spring Festival holiday over a weekend, two make-up
Sundays/Saturdays); it is not the official one.
"""
from __future__ import annotations

import datetime as dt
import json
import pickle

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines import cli, nightly
from pipelines.config import calendar_sources, load_config
from pipelines.errors import UsageError
from tests.builders import case, copy_reference, write_avro
from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
)
from transforms.indicators.catalog import CODES
from transforms.timeutil import PACKAGE_CALENDAR, calendar_years
from warehouse import open_warehouse
from warehouse.duckdb_store import connect

SH = dt.timezone(dt.timedelta(hours=8))
D = dt.date

CALENDAR_2027 = """
calendar:
  2027:
    holidays: [2027-01-01, 2027-02-06..2027-02-14]   # New Year; Spring Festival Sat..Sun
    workdays: [2027-01-31, 2027-02-20]               # make-up Sunday and Saturday
"""


def sh(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH).astimezone(dt.UTC)


def config_file(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the calendar itself ----------------------------------------------------


def test_calendar_2027_spring_festival_deadline_from_config_differs_from_weekdays(tmp_path):
    """Thursday 4 Feb 2027, 3 working days: Monday–Friday says Tuesday 9 Feb;
    the notice's holiday 6–14 Feb makes it Tuesday 16 Feb."""
    calendar = load_config(config_file(tmp_path, CALENDAR_2027)).calendar
    assert PACKAGE_CALENDAR.source(2027) == "weekdays"
    assert PACKAGE_CALENDAR.deadline(D(2027, 2, 4), 3) == D(2027, 2, 9)
    assert calendar.source(2027) == "config"
    assert calendar.deadline(D(2027, 2, 4), 3) == D(2027, 2, 16)
    # The make-up Sunday 31 Jan is a working day; the weekday holiday 1 Jan is not.
    assert calendar.deadline(D(2027, 1, 29), 1) == D(2027, 1, 31)
    assert PACKAGE_CALENDAR.deadline(D(2027, 1, 29), 1) == D(2027, 2, 1)
    assert calendar.deadline(D(2027, 1, 1), 0) == D(2027, 1, 4)
    # Before 2027 the package still serves.
    assert calendar.deadline(D(2026, 9, 30), 1) == PACKAGE_CALENDAR.deadline(D(2026, 9, 30), 1)


def test_calendar_config_overrides_package_for_a_known_year(tmp_path):
    """A year in the config is served by the config alone, even one the
    package knows (a corrected notice, or a local arrangement)."""
    calendar = load_config(config_file(tmp_path, """
calendar:
  "2023": {holidays: [2023-10-02]}
""")).calendar
    assert PACKAGE_CALENDAR.is_working_day(D(2023, 10, 7))  # the package's 调休 Saturday
    assert not calendar.is_working_day(D(2023, 10, 7))  # not in this config: a Saturday
    assert not PACKAGE_CALENDAR.is_working_day(D(2023, 10, 3))
    assert calendar.is_working_day(D(2023, 10, 3))
    assert not calendar.is_working_day(D(2023, 10, 2))
    assert calendar.is_working_day(D(2024, 2, 4)) == PACKAGE_CALENDAR.is_working_day(D(2024, 2, 4))


def test_calendar_sources_per_year_and_a_warning_for_weekdays(tmp_path, caplog):
    config = load_config(config_file(tmp_path, CALENDAR_2027))
    assert calendar_sources(config, [2026, 2027, 2301, 2027]) == {
        2026: "chinesecalendar", 2027: "config", 2301: "weekdays"}
    assert "no official working-day calendar for 2301" in caplog.text


def test_calendar_years_in_a_runs_scope():
    # A deadline counted in January may start in the previous autumn.
    assert calendar_years([D(2027, 1, 1), D(2027, 12, 1)], D(2027, 12, 31)) == [2026, 2027]
    assert calendar_years([D(2027, 6, 1)], D(2028, 3, 1)) == [2027]
    # Later than as_of nothing is decided: an open case is overdue only before as_of.
    assert calendar_years([D(2026, 11, 1), D(2027, 12, 1)], D(2026, 12, 15)) == [2026]


def test_calendar_travels_with_the_config_into_a_beam_dofn(tmp_path):
    """The calendar is part of the pickled Config, not process-global state:
    a DoFn on Beam's local runner sees the config's 2027."""
    config = load_config(config_file(tmp_path, CALENDAR_2027))
    assert pickle.loads(pickle.dumps(config)).calendar.source(2027) == "config"

    class Deadline(beam.DoFn):
        def __init__(self, cfg):
            self.cfg = cfg

        def process(self, start):
            yield self.cfg.calendar.deadline(start, 3)

    with beam.Pipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([D(2027, 2, 4)]) | beam.ParDo(Deadline(config))
        assert_that(out, equal_to([D(2027, 2, 16)]))


# --- bad YAML: one UsageError line ------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("calendar: [2027-01-01]", "calendar: must map a year"),
    ("calendar: {next: {holidays: [2027-01-01]}}", "calendar key 'next' is not a year"),
    ("calendar: {2027: {holidays: [2026-12-31]}}", "calendar 2027 holidays: 2026-12-31 is not in 2027"),
    ("calendar: {2027: {holidays: [2027-01-01, 2027-02-20], workdays: [2027-02-20]}}",
     "calendar 2027: 2027-02-20 is both a holiday and a workday"),
    ("calendar: {2027: {holidays: [2027-01-01], workdays: [2027-02-08]}}",
     "2027-02-08 is a Monday, a working day anyway"),
    ("calendar: {2027: {holidays: ['2027-02-31']}}", "'2027-02-31' is not a date"),
    ("calendar: {2027: {holidays: [2027-02-31]}}", r"not valid YAML \(day is out of range"),
    ("calendar: {2027: {holidays: [2027-02-14..2027-02-06]}}", "is reversed"),
    ("calendar: {2027: {holiday: [2027-01-01]}}", "unknown key holiday"),
    ("calendar: {2027: {workdays: [2027-02-20]}}", "calendar 2027: no holidays listed"),
    ("calendar: {2027: {holidays: [2027-01-01]}, '2027': {holidays: [2027-01-01]}}",
     "calendar 2027 is given twice"),
])
def test_bad_calendar_yaml_is_a_usage_error(tmp_path, text, message):
    path = config_file(tmp_path, text)
    with pytest.raises(UsageError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_bad_calendar_yaml_stops_yibao_nightly_with_one_line(tmp_path, capsys):
    """Checked before the run opens a pipeline_runs row: exit 2, one line."""
    path = config_file(tmp_path, "calendar: {2027: {holidays: [2027-01-01], workdays: [2027-01-01]}}")
    wh = tmp_path / "w.duckdb"
    code = cli.main(["nightly", "--input", str(tmp_path), "--config", str(path),
                     "--warehouse", f"duckdb:///{wh}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"yibao nightly: {path}: calendar 2027: 2027-01-01 is both a holiday and a workday: "
        "keep it in one list"]
    assert not wh.exists()


# --- a nightly run: deadlines, pipeline_runs, alerts -------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same February 2027 input run twice into one warehouse: without a
    2027 calendar (Monday–Friday), then with the config's."""
    root = tmp_path_factory.mktemp("cal")
    copy_reference(root)
    write_avro(root / "filing" / "cases.avro", "filing", [
        # Thursday 4 Feb, 3 working days, done Monday 15 Feb: late by Monday–Friday
        # (due 9 Feb), on time by the calendar (due 16 Feb).
        case("k1", sh(2027, 2, 4, 10), sh(2027, 2, 15, 10), promised_working_days=3),
    ])
    config = config_file(root, CALENDAR_2027)
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    base = ["--input", str(root), "--warehouse", f"duckdb:///{path}", "--quiet",
            "--as-of", "2027-02-28T23:59:59+08:00", "--months", "2027-02", "--allow-empty", "all"]
    out = {}
    for name, extra in (("weekdays", []), ("config", ["--config", str(config)])):
        run_id = nightly.run(base + extra)
        con = connect(str(path), read_only=True)
        try:
            out[name] = {
                "run_id": run_id,
                "sources": json.loads(con.execute(
                    "SELECT calendar_sources FROM pipeline_runs WHERE run_id = ?", [run_id]
                ).fetchone()[0]),
                "I24": con.execute(
                    "SELECT numerator, denominator FROM indicator_values WHERE indicator_code = 'I24'"
                    " AND region_code = '640104' AND period_type = 'MONTH'"
                    " AND period_start = DATE '2027-02-01'").fetchone(),
                "alerts": con.execute(
                    "SELECT kind, subject, suppressed FROM dq_alerts WHERE kind LIKE 'calendar%'"
                    " ORDER BY raised_at").fetchall(),
            }
        finally:
            con.close()
    return out


def test_calendar_config_decides_the_2027_deadline_in_a_nightly_run(runs):
    assert runs["weekdays"]["I24"] == (0, 1)  # due 9 Feb by Monday–Friday: late
    assert runs["config"]["I24"] == (1, 1)  # due 16 Feb by the notice: on time


def test_calendar_sources_recorded_in_pipeline_runs(runs):
    assert runs["weekdays"]["sources"] == {"2026": "chinesecalendar", "2027": "weekdays"}
    assert runs["config"]["sources"] == {"2026": "chinesecalendar", "2027": "config"}


def test_calendar_missing_alert_for_a_year_without_official_calendar(runs):
    """Raised after the run that fell back to Monday–Friday for 2027;
    resolved by the run whose config has 2027."""
    assert runs["weekdays"]["alerts"] == [("calendar_missing", "2027", False)]
    assert runs["config"]["alerts"] == [("calendar_missing", "2027", False),
                                        ("calendar_missing.resolved", "2027", False)]


def test_calendar_sources_recorded_alike_by_duckdb_and_bigquery(tmp_path, bigquery_endpoint):  # noqa: F811
    """The column is defined once (warehouse/tables.py); both engines' begin_run write it."""
    sources = {2026: "chinesecalendar", 2027: "config"}
    at = dt.datetime(2027, 2, 28, tzinfo=dt.UTC)
    client = emulator_client()
    client.create_dataset("calendar_sources")
    client.close()
    got = {}
    for uri in (f"duckdb:///{tmp_path / 'w.duckdb'}", f"bigquery://{PROJECT}/calendar_sources"):
        with open_warehouse(uri) as wh:
            wh.ensure_schema(CODES)
            wh.begin_run("r1", "nightly", "test", at, at, {}, calendar_sources=sources)
            wh.begin_run("s1", "stream", "test", at, None, {})
            if uri.startswith("duckdb"):
                rows = wh.con.execute("SELECT run_id, calendar_sources FROM pipeline_runs"
                                      " ORDER BY run_id").fetchall()
            else:
                rows = [tuple(r.values()) for r in wh.client.query(
                    f"SELECT run_id, TO_JSON_STRING(calendar_sources) FROM `{wh.ref}.pipeline_runs`"
                    " ORDER BY run_id").result()]
        got[uri[:6]] = [(run_id, None if v in (None, "null") else json.loads(v)) for run_id, v in rows]
    assert got["duckdb"] == got["bigque"] == [
        ("r1", {"2026": "chinesecalendar", "2027": "config"}), ("s1", None)]
