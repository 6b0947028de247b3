"""Warehouse tests on real DuckDB files (WAREHOUSE.md)."""

import datetime as dt
import json
import re
from decimal import Decimal

import pyarrow as pa
import pytest

from warehouse import DuckDBWarehouse, Scope, duckdb_path, open_warehouse, tables
from warehouse.duckdb_store import connect

UTC = dt.UTC
AS_OF = dt.datetime(2023, 11, 30, 16, 0, tzinfo=UTC)
NOV = (dt.date(2023, 11, 1), dt.date(2023, 11, 30))
YTD = (dt.date(2023, 1, 1), dt.date(2023, 11, 30))
CODES = ["I08", "I22", "C01"]
# Scope of one nightly run's failures and dead letters (the test's choice).
SCOPES = {
    "quality_failures": Scope(values={"stream": ["settlement"]}, ranges={"business_date": YTD}),
    "dead_letters": Scope(values={"stream": ["settlement"]}),
}

# Independent of warehouse/tables.py: what each DuckDB type must be in BigQuery.
DUCKDB_TO_BIGQUERY = {
    "VARCHAR": ("STRING", None, None),
    "DATE": ("DATE", None, None),
    "TIMESTAMP WITH TIME ZONE": ("TIMESTAMP", None, None),
    "DECIMAL(38,6)": ("BIGNUMERIC", 38, 6),
    "DOUBLE": ("FLOAT64", None, None),
    "BIGINT": ("INT64", None, None),
    "BOOLEAN": ("BOOL", None, None),
    "JSON": ("JSON", None, None),
}


def rows(name, records):
    """Arrow table of ``records``; run_id / computed_at left for publish to fill."""
    schema = tables.arrow_schema(name)
    if "pipeline" in schema.names:  # the nightly's rows unless a test says otherwise
        records = [{"pipeline": "nightly", **r} for r in records]
    keep = [f for f in schema if f.name in records[0]]
    return pa.Table.from_pylist(records, schema=pa.schema(keep))


def iv(code, region, level, period, num, den, target, pipeline="nightly", components=None):
    value = None if den == 0 else num / den
    direction = "<=" if code == "C01" else ">="
    meets = None if value is None else (value <= target if direction == "<=" else value >= target)
    return {
        "indicator_code": code,
        "region_code": region,
        "region_level": level,
        "period_type": "MONTH" if period == NOV else "YTD",
        "period_start": period[0],
        "period_end": period[1],
        "numerator": Decimal(num),
        "denominator": Decimal(den),
        "value": value,
        "target": target,
        "direction": direction,
        "meets_target": meets,
        "components": components,
        "as_of": AS_OF,
        "pipeline": pipeline,
    }


def content():
    """One run's outputs: every table of WAREHOUSE.md but pipeline_runs."""
    c01 = json.dumps({"cur_sum": "1000.00", "cur_cnt": 2, "prev_sum": "900.00", "prev_cnt": 2})
    return {
        "indicator_values": rows(
            "indicator_values",
            [
                iv("I08", "640000", "province", NOV, 99, 100, 0.99),
                iv("I08", "640000", "province", YTD, 980, 1000, 0.99),
                iv("I08", "640100", "pooling", NOV, 50, 50, 0.99),
                iv("I22", "640000", "province", NOV, 7, 10, 0.7),
                iv("I22", "640000", "province", NOV, 1, 2, 0.7, pipeline="stream"),
                iv("I22", "640100", "pooling", NOV, 0, 0, 0.7),
                iv("C01", "640000", "province", NOV, 50, 450, 0.05, components=c01),
            ],
        ),
        "quality_rule_results": rows(
            "quality_rule_results",
            [
                {
                    "rule_id": rule,
                    "stream": "settlement",
                    "region_code": "640000",
                    "region_level": "province",
                    "period_type": "MONTH",
                    "period_start": NOV[0],
                    "period_end": NOV[1],
                    "checked": 100,
                    "failed": failed,
                    "pass_rate": 1 - failed / 100,
                }
                for rule, failed in (("T01", 1), ("T04", 0))
            ],
        ),
        "quality_failures": rows(
            "quality_failures",
            [
                {
                    "stream": "settlement",
                    "record_key": f"S{i}",
                    "rule_id": "T01",
                    "region_code": "640104",
                    "business_date": dt.date(2023, 11, i),
                    "details": json.dumps({"fixmedins_code": f"X{i}"}),
                }
                for i in (1, 2, 3)
            ],
        ),
        "dead_letters": rows(
            "dead_letters",
            [
                {
                    "stream": "settlement",
                    "source": "in/settlement/part-0.avro",
                    "error": "undecodable",
                    "size": 12,
                    "sha256": "ab" * 32,
                    "quarantine_path": "var/quarantine/ab.bin",
                    "received_at": AS_OF,
                }
            ],
        ),
        "pipeline_run_streams": rows(
            "pipeline_run_streams",
            [
                {
                    "stream": "settlement",
                    "read": 104,
                    "accepted": 103,
                    "duplicates": 2,
                    "dead_lettered": 1,
                    "late_dropped": 0,
                    "quality_failures": 3,
                }
            ],
        ),
        "dq_alerts": rows(
            "dq_alerts",
            [
                {
                    "alert_id": "I08/640000/2023-11",
                    "raised_at": AS_OF,
                    "kind": "threshold",
                    "subject": "I08",
                    "region_code": "640000",
                    "period": "2023-11",
                    "observed": 0.98,
                    "threshold": 0.99,
                    "message": "结算信息合格率 below target",
                    "channels": json.dumps(["webhook"]),
                    "suppressed": False,
                }
            ],
        ),
        "dim_indicator": rows(
            "dim_indicator",
            [
                {"indicator_code": c, "name_zh": zh, "name_en": en, "plan_number": n,
                 "direction": d, "default_target": t, "family": f}
                for c, zh, en, n, d, t, f in (
                    ("I08", "结算信息合格率", "settlement qualification", 8, ">=", 0.99, "plan"),
                    ("I22", "住院费用跨省直接结算率", "cross-province direct", 22, ">=", 0.7, "plan"),
                    ("C01", "次均住院费用增幅", "inpatient cost growth", None, "<=", 0.05, "cost"),
                )
            ],
        ),
        "dim_region": rows(
            "dim_region",
            [
                {"region_code": "640000", "name": "宁夏回族自治区", "level": "province",
                 "parent_code": None, "pooling_code": None},
                {"region_code": "640100", "name": "银川市", "level": "pooling",
                 "parent_code": "640000", "pooling_code": "640100"},
                {"region_code": "640104", "name": "兴庆区", "level": "county",
                 "parent_code": "640100", "pooling_code": "640100"},
            ],
        ),
        "dim_quality_rule": rows(
            "dim_quality_rule",
            [
                {"rule_id": "T01", "stream": "settlement", "severity": "quality",
                 "description": "fixmedins_code format"},
                {"rule_id": "T04", "stream": "settlement", "severity": "quality",
                 "description": "amounts balance"},
            ],
        ),
    }


def snapshot(wh, drop=("run_id", "computed_at")):
    """Every table's rows, sorted, without the columns a re-run may change."""
    out = {}
    for name, t in tables.TABLES.items():
        cols = ", ".join(c for c in t.column_names if c not in drop)
        out[name] = wh.con.execute(f"SELECT {cols} FROM {name} ORDER BY ALL").fetchall()
    return out


def run(wh, run_id, data=None, scopes=SCOPES):
    wh.begin_run(run_id, "nightly", "FnApiRunner", AS_OF, AS_OF, {"months": "2023-01..2023-11"})
    wh.publish(run_id, content() if data is None else data, scopes)
    wh.finish_run(run_id, "succeeded", AS_OF)


@pytest.fixture
def wh(tmp_path):
    w = DuckDBWarehouse(tmp_path / "wh.duckdb")
    w.ensure_schema(CODES)
    yield w
    w.close()


# --- one definition, two engines -------------------------------------------


def test_every_warehouse_md_table_is_defined_with_its_key():
    assert set(tables.TABLES) == {
        "indicator_values", "quality_rule_results", "quality_failures", "dead_letters",
        "pipeline_runs", "pipeline_run_streams", "dq_alerts",
        "dim_indicator", "dim_region", "dim_quality_rule", "manual_evidence",
        "indicator_breakdown", "dim_institution", "dim_matter",
    }
    assert tables.table("indicator_values").key == (
        "indicator_code", "region_code", "period_type", "period_start", "period_end", "pipeline"
    )
    assert tables.table("quality_rule_results").key == (
        "rule_id", "stream", "region_code", "period_type", "period_start", "period_end", "pipeline"
    )


@pytest.mark.parametrize("name", list(tables.TABLES))
def test_duckdb_ddl_and_bigquery_schema_agree(wh, name):
    duck = wh.con.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_name = ? ORDER BY ordinal_position",
        [name],
    ).fetchall()
    bq = tables.bigquery_schema(name)
    assert [d[0] for d in duck] == [f.name for f in bq]  # names and order
    for (col, duck_type, nullable), field in zip(duck, bq, strict=True):
        assert DUCKDB_TO_BIGQUERY[duck_type] == (field.field_type, field.precision, field.scale), col
        assert field.mode == ("NULLABLE" if nullable else "REQUIRED"), col

    # The DDL text says the same as the SchemaFields.
    ddl = tables.bigquery_ddl(name, "proj.ds")
    parsed = re.findall(r"^  (\w+) ([A-Z0-9]+(?:\(\d+, \d+\))?)( NOT NULL)? OPTIONS", ddl, re.M)
    assert parsed == [
        (f.name, tables.bigquery_type_sql(f), " NOT NULL" if f.mode == "REQUIRED" else "")
        for f in bq
    ]

    # Arrow schema = what DuckDB hands back for the table (JSON comes back as text).
    got = wh.con.sql(f"SELECT * FROM {name} LIMIT 0").to_arrow_table().schema
    assert [(f.name, f.type) for f in got] == [
        (f.name, f.type) for f in tables.arrow_schema(name)
    ]


def test_bigquery_partitioning_and_clustering():
    ddl = tables.bigquery_ddl("indicator_values", "proj.ds")
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS `proj.ds.indicator_values`")
    assert "numerator BIGNUMERIC(38, 6) OPTIONS" in ddl
    assert "components JSON OPTIONS" in ddl
    assert "\nPARTITION BY DATE_TRUNC(period_start, MONTH)\nCLUSTER BY indicator_code, region_code\n" in ddl
    assert "PARTITION BY" not in tables.bigquery_ddl("quality_failures", "proj.ds")


# --- schema ------------------------------------------------------------------


def test_ensure_schema_is_idempotent_and_refuses_drift(tmp_path):
    path = tmp_path / "wh.duckdb"
    with DuckDBWarehouse(path) as w:
        w.ensure_schema(CODES)
        run(w, "r1")
        before = snapshot(w, drop=())
        w.ensure_schema(CODES)
        w.ensure_schema()  # codes from dim_indicator
        assert snapshot(w, drop=()) == before
        w.con.execute("ALTER TABLE dq_alerts ADD COLUMN extra VARCHAR")
        with pytest.raises(RuntimeError, match="dq_alerts differs"):
            w.ensure_schema(CODES)


# --- idempotency ---------------------------------------------------------------


def test_publish_twice_same_content_is_identical_but_for_run_id_and_computed_at(wh):
    run(wh, "r1")
    first = snapshot(wh)
    first_ids = wh.con.execute("SELECT DISTINCT run_id FROM indicator_values").fetchall()
    run(wh, "r2")
    second = snapshot(wh)

    # Runs and their per-stream counters gain the new run's rows; nothing else changes.
    second.pop("pipeline_runs"), first.pop("pipeline_runs")
    runs = wh.con.execute("SELECT run_id, status FROM pipeline_runs ORDER BY 1").fetchall()
    assert runs == [("r1", "succeeded"), ("r2", "succeeded")]
    streams = wh.con.execute("SELECT run_id FROM pipeline_run_streams ORDER BY 1").fetchall()
    assert streams == [("r1",), ("r2",)]
    assert second.pop("pipeline_run_streams") == first.pop("pipeline_run_streams") * 2
    assert second == first
    assert first_ids == [("r1",)]
    assert wh.con.execute("SELECT DISTINCT run_id FROM indicator_values").fetchall() == [("r2",)]
    assert wh.con.execute("SELECT DISTINCT run_id FROM quality_failures").fetchall() == [("r2",)]


def test_tampered_rows_are_restored_by_a_republish(wh):
    run(wh, "r1")
    clean = snapshot(wh)
    wh.con.execute("UPDATE indicator_values SET numerator = 1, value = 0.01, meets_target = false"
                   " WHERE indicator_code = 'I08' AND period_type = 'MONTH' AND region_code = '640000'")
    wh.con.execute("DELETE FROM quality_failures WHERE record_key = 'S2'")
    wh.con.execute("INSERT INTO quality_failures (stream, record_key, rule_id, business_date, run_id,"
                   " pipeline) VALUES ('settlement', 'STRAY', 'T04', DATE '2023-06-01', 'r0', 'nightly')")
    wh.con.execute("UPDATE dim_region SET name = 'x'")
    wh.con.execute("DELETE FROM dead_letters")
    assert snapshot(wh) != clean
    run(wh, "r2")
    after = snapshot(wh)
    for name in ("pipeline_runs", "pipeline_run_streams"):
        after.pop(name), clean.pop(name)
    assert after == clean


def test_scoped_tables_replace_only_their_scope(wh):
    run(wh, "r1")
    other = rows("quality_failures", [{"stream": "enrolment", "record_key": "E1", "rule_id": "E02",
                                       "region_code": "640104", "business_date": NOV[0]}])
    wh.publish("r1", {"quality_failures": other},
               {"quality_failures": Scope(values={"stream": ["enrolment"]})})

    # A clean re-run: no settlement failures, no dead letters -> theirs are gone,
    # the enrolment failures (another scope) stay.
    data = content()
    data["quality_failures"] = data["quality_failures"].slice(0, 0)
    del data["dead_letters"]
    run(wh, "r2", data)
    assert wh.con.execute("SELECT stream, record_key FROM quality_failures").fetchall() == [
        ("enrolment", "E1")
    ]
    assert wh.con.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def test_rows_outside_their_scope_or_duplicate_keys_are_refused(wh):
    run(wh, "r1")
    before = snapshot(wh, drop=())
    narrow = {**SCOPES, "quality_failures": Scope(ranges={"business_date": (NOV[0], NOV[0])})}
    with pytest.raises(ValueError, match="outside their scope"):
        wh.publish("r1", content(), narrow)
    data = content()
    data["indicator_values"] = pa.concat_tables([data["indicator_values"]] * 2)
    with pytest.raises(ValueError, match="appears twice"):
        wh.publish("r1", data, SCOPES)
    with pytest.raises(ValueError, match="needs a Scope"):
        wh.publish("r1", content(), {})
    with pytest.raises(ValueError, match="run_id other than"):
        wh.publish("r9", {"pipeline_run_streams": content()["pipeline_run_streams"]
                          .append_column("run_id", pa.array(["r1"]))})
    with pytest.raises(ValueError, match="empty Scope"):
        Scope()
    assert snapshot(wh, drop=()) == before


def test_publish_more_than_one_row_group(wh):
    # duckdb 2.0.0 hides ≥ 122,880 Arrow rows put into a CREATE TABLE AS … LIMIT 0
    # table in the same transaction (duckdb_store.py); guard the staging path.
    n = 130_000
    codes = pa.array([f"X{i % 100:02d}" for i in range(n)])
    regions = pa.array([str(650000 + i // 100) for i in range(n)])
    big = pa.table({
        "indicator_code": codes,
        "region_code": regions,
        "region_level": pa.array(["county"] * n),
        "period_type": pa.array(["MONTH"] * n),
        "period_start": pa.array([NOV[0]] * n),
        "period_end": pa.array([NOV[1]] * n),
        "numerator": pa.array(range(n), pa.int64()),
        "denominator": pa.array([n] * n, pa.int64()),
        "as_of": pa.array([AS_OF] * n, pa.timestamp("us", tz="UTC")),
        "pipeline": pa.array(["nightly"] * n),
    })
    for run_id in ("r1", "r2"):
        assert wh.publish(run_id, {"indicator_values": big}) == {"indicator_values": n}
        got = wh.con.execute(
            "SELECT count(*), count(DISTINCT region_code), sum(numerator), min(run_id)"
            " FROM indicator_values WHERE indicator_code LIKE 'X%'"
        ).fetchone()
        assert got == (n, n // 100, Decimal(n * (n - 1) // 2), run_id)
    with pytest.raises(ValueError, match="appears twice"):
        wh.publish("r3", {"indicator_values": pa.concat_tables([big, big.slice(n - 1)])})


# --- failure -------------------------------------------------------------------


def test_failure_inside_publish_rolls_everything_back(wh, monkeypatch):
    run(wh, "r1")
    before = snapshot(wh, drop=())
    written = []
    original = DuckDBWarehouse._write_table

    def write_then_fail(self, name, *args):
        original(self, name, *args)
        written.append(name)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(DuckDBWarehouse, "_write_table", write_then_fail)
    data = content()
    for name, col in (("indicator_values", "value"), ("dim_region", "name")):
        # New values that must not land.
        t = data[name]
        i = t.schema.get_field_index(col)
        data[name] = t.set_column(i, t.field(i), pa.array([None] * t.num_rows, t.field(i).type))
    wh.begin_run("r2", "nightly", "FnApiRunner", AS_OF, AS_OF, {})
    with pytest.raises(RuntimeError, match="disk on fire"):
        wh.publish("r2", data, SCOPES)
    assert written == ["indicator_values"]  # the first table was written, then undone
    wh.fail_run("r2", RuntimeError("disk on fire"))

    after = snapshot(wh, drop=())
    runs = after.pop("pipeline_runs")
    assert runs[:1] == before.pop("pipeline_runs")
    assert after == before
    status = wh.con.execute(
        "SELECT status, error, finished_at IS NOT NULL FROM pipeline_runs WHERE run_id = 'r2'"
    ).fetchone()
    assert status == ("failed", "RuntimeError: disk on fire", True)
    # The connection is usable after the rollback.
    monkeypatch.undo()
    run(wh, "r3")


def test_run_bookkeeping(wh):
    wh.begin_run("s1", "stream", "DataflowRunner", AS_OF, None, None)
    assert wh.con.execute("SELECT status, finished_at FROM pipeline_runs").fetchall() == [
        ("running", None)
    ]
    with pytest.raises(ValueError, match="already exists"):
        wh.begin_run("s1", "stream", "DataflowRunner", AS_OF, None, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        wh.begin_run("s2", "nightly", "FnApiRunner", dt.datetime(2023, 12, 1), AS_OF)
    with pytest.raises(KeyError):
        wh.finish_run("nope")
    with pytest.raises(ValueError):
        wh.finish_run("s1", "running")
    # begin_run committed on its own: another connection sees the row.
    other = connect(wh.path)
    assert other.execute("SELECT run_id, status FROM pipeline_runs").fetchall() == [
        ("s1", "running")
    ]
    other.close()


# --- views ---------------------------------------------------------------------


def test_views(wh):
    run(wh, "r1")
    latest = wh.con.execute(
        "SELECT indicator_name_zh, region_name, pipeline, value FROM v_indicator_latest"
        " WHERE indicator_code = 'I22' AND region_code = '640000' ORDER BY pipeline"
    ).fetchall()
    assert latest == [
        ("住院费用跨省直接结算率", "宁夏回族自治区", "nightly", 0.7),
        ("住院费用跨省直接结算率", "宁夏回族自治区", "stream", 0.5),
    ]
    card = wh.con.sql(
        "SELECT * FROM v_region_scorecard WHERE period_type = 'MONTH' ORDER BY ALL"
    ).to_arrow_table().to_pylist()
    assert [c for c in card[0] if c in CODES] == CODES  # one column per code, in order
    by_key = {(r["region_code"], r["pipeline"]): r for r in card}
    province = by_key["640000", "nightly"]
    assert province["region_name"] == "宁夏回族自治区"
    assert province["I08"] == 0.99 and province["I22"] == 0.7
    assert province["C01"] == pytest.approx(50 / 450)
    assert (province["evaluated"], province["missed"], province["missed_indicators"]) == (
        3, 1, "C01"
    )
    pooling = by_key["640100", "nightly"]
    assert pooling["I22"] is None and pooling["C01"] is None  # 0/0 and absent
    assert (pooling["evaluated"], pooling["missed"], pooling["missed_indicators"]) == (1, 0, None)
    assert by_key["640000", "stream"]["missed_indicators"] == "I22"


def test_view_sql_is_shared_between_engines():
    duck = tables.views(lambda t: t, CODES)
    bq = tables.views(lambda t: f"`p.d.{t}`", CODES)
    for name in duck:
        assert bq[name] == re.sub(
            r"\b(FROM|JOIN) (\w+)", lambda m: f"{m[1]} `p.d.{m[2]}`", duck[name]
        )
    with pytest.raises(ValueError):
        tables.view_region_scorecard(lambda t: t, ["I08; DROP TABLE x"])


# --- no downloads ----------------------------------------------------------------


def test_no_extension_is_installed_or_loaded(tmp_path):
    def states(con):
        return con.execute(
            "SELECT extension_name, installed, loaded FROM duckdb_extensions() ORDER BY 1"
        ).fetchall()

    with DuckDBWarehouse(tmp_path / "wh.duckdb") as w:
        ext_dir = tmp_path / "extensions"
        w.con.execute(f"SET extension_directory = '{ext_dir}'")
        before = states(w.con)
        assert w.con.execute(
            "SELECT current_setting('autoinstall_known_extensions'),"
            " current_setting('autoload_known_extensions')"
        ).fetchone() == (False, False)
        w.ensure_schema(CODES)
        run(w, "r1")
        w.con.execute("SELECT * FROM v_region_scorecard").fetchall()
        assert states(w.con) == before
        assert not ext_dir.exists()
        loaded = {name for name, _installed, is_loaded in before if is_loaded}
        assert {"json", "icu"} <= loaded  # built in, nothing to fetch


# --- URIs ------------------------------------------------------------------------


def test_open_warehouse_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # SQLAlchemy's convention: three slashes then a relative path, four for an absolute one.
    with open_warehouse(f"duckdb:///{tmp_path}/abs/a.duckdb") as w:
        assert w.path == f"{tmp_path}/abs/a.duckdb"
    with open_warehouse("duckdb:///rel/b.duckdb") as w:
        assert w.path == "rel/b.duckdb"
    assert duckdb_path("duckdb:////srv/w.duckdb") == "/srv/w.duckdb"
    assert duckdb_path("plain/file.duckdb") == "plain/file.duckdb"
    with open_warehouse() as w:
        assert w.path == "var/warehouse.duckdb"
    assert (tmp_path / "abs/a.duckdb").exists() and (tmp_path / "rel/b.duckdb").exists()
    assert (tmp_path / "var/warehouse.duckdb").exists()
    with open_warehouse("duckdb://:memory:") as w:
        w.ensure_schema(CODES)
    with pytest.raises(ValueError, match="BigQuery warehouse"):
        duckdb_path("bigquery://proj/ds")
    monkeypatch.setenv("YIBAO_BIGQUERY_ENDPOINT", "http://127.0.0.1:9")
    with open_warehouse("bigquery://proj/ds") as w:
        assert type(w).__name__ == "BigQueryWarehouse" and w.ref == "proj.ds"


def test_an_older_warehouse_gains_new_nullable_columns(tmp_path):
    """Upgrading must not end in `Binder Error: Table "pipeline_runs" does not
    have a column with name "calendar_sources"`: columns a newer tables.py
    appends (nullable) are added, history kept; other drift still fails."""
    import duckdb

    path = tmp_path / "old.duckdb"
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema()
        wh.begin_run("r-old", "nightly", "FnApiRunner", AS_OF, AS_OF, {})
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE pipeline_runs DROP COLUMN calendar_sources")
    con.close()
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema()
    con = duckdb.connect(str(path))
    assert con.sql("SELECT run_id, calendar_sources FROM pipeline_runs").fetchall() == [("r-old", None)]
    con.execute("ALTER TABLE pipeline_runs DROP COLUMN error")  # not a trailing addition: refused
    con.close()
    with DuckDBWarehouse(path) as wh, pytest.raises(RuntimeError, match="differs from warehouse/tables.py"):
        wh.ensure_schema()
