"""The BigQuery warehouse against a local BigQuery (the bqemulator package,
tests/conftest_bigquery.py) through the real google-cloud-bigquery client:
the nightly pipeline writes the same business content into BigQuery as into
DuckDB, run after run, and BigQueryWarehouse keeps DuckDBWarehouse's
contract (tests/test_warehouse.py's hand-made content)."""
from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pyarrow as pa
import pytest
from rich.console import Console

from datagen.generate import generate
from pipelines import nightly
from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
    new_dataset,
)
from tests.test_warehouse import AS_OF, CODES, NOV, SCOPES, content, rows
from warehouse import DuckDBWarehouse, Scope, open_warehouse, tables
from warehouse.bigquery_store import BigQueryWarehouse, make_client, parse_uri, table_ddl
from warehouse.duckdb_store import connect

# Columns a re-run changes by design (WAREHOUSE.md "Semantics").
VOLATILE = {"run_id", "computed_at", "received_at", "raised_at"}
# pipeline_runs also records when and with which options (the warehouse URI) it ran.
RUN_VOLATILE = VOLATILE | {"started_at", "finished_at", "options"}


# --- reading both engines the same way ----------------------------------------

JSON_COLUMNS = {c.name for t in tables.TABLES.values() for c in t.columns if c.type == "JSON"}


def _norm(col: str, value):
    if col in JSON_COLUMNS and value is not None:  # DuckDB gives text, BigQuery parsed JSON
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    if isinstance(value, Decimal):
        return value.normalize()  # DECIMAL(38,6) here, NUMERIC's 9 places on the emulator
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, float):  # shares and rates: the last bit may differ in transit;
        return float(f"{value:.12g}")  # numerators and denominators stay exact decimals
    return value


def _sorted(records: list[dict]) -> list[tuple]:
    return sorted((tuple(_norm(c, v) for c, v in r.items()) for r in records), key=repr)


def bq_rows(uri: str, sql: str) -> list[tuple]:
    """``sql`` on the BigQuery warehouse; ``@ds`` names its dataset."""
    project, dataset = parse_uri(uri)
    client = make_client(project)
    try:
        return _sorted([dict(r) for r in client.query(
            sql.replace("@ds", f"{project}.{dataset}")).result()])
    finally:
        client.close()


def duck_rows(path, sql: str) -> list[tuple]:
    con = connect(str(path), read_only=True)
    try:
        cur = con.execute(sql.replace("`@ds.", "").replace("`", ""))
        names = [d[0] for d in cur.description]
        return _sorted([dict(zip(names, r)) for r in cur.fetchall()])
    finally:
        con.close()


def _select(name: str, drop: set[str]) -> str:
    drop = RUN_VOLATILE if name == "pipeline_runs" else drop
    cols = [c for c in tables.table(name).column_names if c not in drop]
    return f"SELECT {', '.join(f'`{c}`' for c in cols)} FROM `@ds.{name}`"


def bq_content(uri: str, drop: set[str] = VOLATILE) -> dict[str, list[tuple]]:
    return {name: bq_rows(uri, _select(name, drop)) for name in tables.TABLES}


def duck_content(path, drop: set[str] = VOLATILE) -> dict[str, list[tuple]]:
    return {name: duck_rows(path, _select(name, drop)) for name in tables.TABLES}


@pytest.fixture
def bq_uri(bigquery_endpoint):  # noqa: F811 - the imported fixture
    """A fresh dataset per test."""
    return f"bigquery://{PROJECT}/{new_dataset()}"


@pytest.fixture
def bq(bq_uri):
    with open_warehouse(bq_uri) as w:
        w.ensure_schema(CODES)
        yield w


def run(wh, run_id, data=None, scopes=SCOPES):
    wh.begin_run(run_id, "nightly", "FnApiRunner", AS_OF, AS_OF, {"months": "2023-01..2023-11"})
    wh.publish(run_id, content() if data is None else data, scopes)
    wh.finish_run(run_id, "succeeded", AS_OF)


def query(wh: BigQueryWarehouse, sql: str) -> list[tuple]:
    return [tuple(r.values()) for r in wh.client.query(sql.replace("@ds", wh.ref)).result()]


# --- the nightly pipeline: BigQuery == DuckDB -----------------------------------


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    generate(root, persons=1500, console=Console(file=io.StringIO()))
    return root


@pytest.fixture(scope="module")
def nightly_runs(landing, bigquery_endpoint, tmp_path_factory):  # noqa: F811
    """Two identical nightly runs into each engine; the content after each."""
    work = tmp_path_factory.mktemp("nightly")
    client = emulator_client()
    client.create_dataset("yibao")
    client.close()
    uris = {"duckdb": f"duckdb:///{work}/warehouse.duckdb", "bigquery": f"bigquery://{PROJECT}/yibao"}
    as_of = (landing / "as_of.txt").read_text().strip()
    after = []
    for _ in range(2):
        for uri in uris.values():
            # One quarantine for both: dead_letters.quarantine_path is content. Both
            # directories explicit: for bigquery:// the defaults are under ./var.
            nightly.run(["--input", str(landing), "--warehouse", uri, "--as-of", as_of,
                         "--quarantine", str(work / "quarantine"), "--staging", str(work / "staging"),
                         "--no_alerts"])
        after.append({"duckdb": duck_content(work / "warehouse.duckdb"),
                      "bigquery": bq_content(uris["bigquery"])})
    return {"landing": landing, "uris": uris, "as_of": as_of, "work": work, "after": after}


@pytest.mark.parametrize("run_no", [1, 2])
def test_nightly_writes_the_same_content_to_bigquery_and_duckdb(nightly_runs, run_no):
    got = nightly_runs["after"][run_no - 1]
    for name in tables.TABLES:
        assert got["bigquery"][name] == got["duckdb"][name], name
    # Not vacuous: every output table has rows (dq_alerts: alerts are off;
    # manual_evidence: loaded by `yibao evidence load`, not by the nightly).
    empty = {n for n, r in got["bigquery"].items() if not r}
    assert empty == {"dq_alerts", "manual_evidence"}
    # (pipeline, runner, status, as_of, error)
    assert [(r[2], r[4]) for r in got["bigquery"]["pipeline_runs"]] == [("succeeded", None)] * run_no


def test_second_nightly_run_changes_nothing_but_the_run_log(nightly_runs):
    first, second = nightly_runs["after"]
    for name in tables.TABLES:
        if name in ("pipeline_runs", "pipeline_run_streams"):  # gain the run's rows
            assert sorted(second["bigquery"][name], key=repr) == sorted(
                first["bigquery"][name] * 2, key=repr), name
        else:
            assert second["bigquery"][name] == first["bigquery"][name], name


def test_failed_nightly_publish_leaves_the_previous_state(nightly_runs, monkeypatch):
    uri, before = nightly_runs["uris"]["bigquery"], nightly_runs["after"][-1]["bigquery"]
    original = BigQueryWarehouse._statements

    def explode_after_first(self, name, *args):
        out = original(self, name, *args)
        return out + ["SELECT ERROR('injected sink failure')"] if name == "indicator_values" else out

    monkeypatch.setattr(BigQueryWarehouse, "_statements", explode_after_first)
    with pytest.raises(Exception, match="injected sink failure"):
        nightly.run(["--input", str(nightly_runs["landing"]), "--warehouse", uri,
                     "--as-of", nightly_runs["as_of"], "--no_alerts",
                     "--quarantine", str(nightly_runs["work"] / "quarantine"),
                     "--staging", str(nightly_runs["work"] / "staging")])
    monkeypatch.undo()
    after = bq_content(uri)
    runs = after.pop("pipeline_runs")
    assert sorted(r[2] for r in runs) == ["failed", "succeeded", "succeeded"]
    assert "injected sink failure" in next(r[4] for r in runs if r[2] == "failed")
    assert after == {n: r for n, r in before.items() if n != "pipeline_runs"}
    with open_warehouse(uri) as wh:  # staging tables went too
        assert not [t for t in wh.client.list_tables(wh.ref) if t.table_id.startswith("_stage")]


# --- BigQueryWarehouse keeps DuckDBWarehouse's contract ---------------------------


def test_hand_made_content_and_views_are_the_same_in_both_engines(bq, bq_uri, tmp_path):
    path = tmp_path / "wh.duckdb"
    with DuckDBWarehouse(path) as duck:
        duck.ensure_schema(CODES)
        for wh in (bq, duck):
            run(wh, "r1")
            run(wh, "r2")
    # Same run ids in both: only the publish times differ.
    assert bq_content(bq_uri, drop={"computed_at"}) == duck_content(path, drop={"computed_at"})
    for sql in ("SELECT * FROM `@ds.v_region_scorecard`",
                "SELECT * EXCEPT (run_id, computed_at) FROM `@ds.v_indicator_latest`"):
        want = duck_rows(path, sql.replace("EXCEPT", "EXCLUDE"))
        assert bq_rows(bq_uri, sql) == want and want, sql
    assert bq_rows(bq_uri, "SELECT DISTINCT run_id FROM `@ds.indicator_values`") == [("r2",)]


def test_tampered_rows_are_restored_by_a_republish(bq, bq_uri):
    run(bq, "r1")
    clean = bq_content(bq_uri)
    for sql in (
        "UPDATE `@ds.indicator_values` SET numerator = 1, value = 0.01 WHERE indicator_code = 'I08'",
        "DELETE FROM `@ds.quality_failures` WHERE record_key = 'S2'",
        "INSERT INTO `@ds.quality_failures` (stream, record_key, rule_id, business_date, run_id,"
        " pipeline) VALUES ('settlement', 'STRAY', 'T04', DATE '2023-06-01', 'r0', 'nightly')",
        "UPDATE `@ds.dim_region` SET name = 'x' WHERE TRUE",
        "DELETE FROM `@ds.dead_letters` WHERE TRUE",
    ):
        query(bq, sql)
    assert bq_content(bq_uri) != clean
    run(bq, "r2")
    after = bq_content(bq_uri)
    for name in ("pipeline_runs", "pipeline_run_streams"):
        after.pop(name), clean.pop(name)
    assert after == clean


def test_scoped_tables_replace_only_their_scope(bq, bq_uri):
    run(bq, "r1")
    other = rows("quality_failures", [{"stream": "enrolment", "record_key": "E1", "rule_id": "E02",
                                       "region_code": "640104", "business_date": NOV[0]}])
    bq.publish("r1", {"quality_failures": other},
               {"quality_failures": Scope(values={"stream": ["enrolment"]})})
    data = content()
    data["quality_failures"] = data["quality_failures"].slice(0, 0)
    del data["dead_letters"]
    run(bq, "r2", data)
    assert bq_rows(bq_uri, "SELECT stream, record_key FROM `@ds.quality_failures`") == [
        ("enrolment", "E1")]
    assert bq_rows(bq_uri, "SELECT COUNT(*) FROM `@ds.dead_letters`") == [(0,)]


def test_bad_publishes_are_refused_and_change_nothing(bq, bq_uri):
    run(bq, "r1")
    before = bq_content(bq_uri, drop=set())
    narrow = {**SCOPES, "quality_failures": Scope(ranges={"business_date": (NOV[0], NOV[0])})}
    with pytest.raises(ValueError, match="outside their scope"):
        bq.publish("r1", content(), narrow)
    data = content()
    data["indicator_values"] = pa.concat_tables([data["indicator_values"]] * 2)
    with pytest.raises(ValueError, match="appears twice"):
        bq.publish("r1", data, SCOPES)
    with pytest.raises(ValueError, match="needs a Scope"):
        bq.publish("r1", content(), {})
    with pytest.raises(ValueError, match="run_id other than"):
        bq.publish("r9", {"pipeline_run_streams": content()["pipeline_run_streams"]
                          .append_column("run_id", pa.array(["r1"]))})
    with pytest.raises(ValueError, match="not in the table"):
        bq.publish("r9", {"dim_region": content()["dim_region"].append_column(
            "extra", pa.array(["x"] * 3))})
    assert bq_content(bq_uri, drop=set()) == before
    assert not [t for t in bq.client.list_tables(bq.ref) if t.table_id.startswith("_stage")]


def test_failure_inside_the_transaction_rolls_everything_back(bq, bq_uri, monkeypatch):
    run(bq, "r1")
    before = bq_content(bq_uri, drop=set())
    original = BigQueryWarehouse._statements
    seen = []

    def fail_after_first_table(self, name, *args):
        seen.append(name)
        out = original(self, name, *args)
        return out + ["SELECT ERROR('disk on fire')"] if len(seen) == 1 else out

    monkeypatch.setattr(BigQueryWarehouse, "_statements", fail_after_first_table)
    data = content()
    t = data["indicator_values"]  # new values that must not land
    i = t.schema.get_field_index("value")
    data["indicator_values"] = t.set_column(i, t.field(i), pa.nulls(t.num_rows, pa.float64()))
    bq.begin_run("r2", "nightly", "FnApiRunner", AS_OF, AS_OF, {})
    with pytest.raises(Exception, match="disk on fire"):
        bq.publish("r2", data, SCOPES)
    bq.fail_run("r2", RuntimeError("disk on fire"))
    monkeypatch.undo()
    after = bq_content(bq_uri, drop=set())
    assert after.pop("pipeline_runs") == sorted(
        before.pop("pipeline_runs") + [("nightly", "FnApiRunner", "failed",
                                        AS_OF.isoformat(), "RuntimeError: disk on fire", None)],
        key=repr)
    assert after == before
    run(bq, "r3")  # usable afterwards


def test_run_bookkeeping(bq, bq_uri):
    bq.begin_run("s1", "stream", "DataflowRunner", AS_OF, None, None)
    assert bq_rows(bq_uri, "SELECT status, finished_at, options FROM `@ds.pipeline_runs`") == [
        ("running", None, None)]
    with pytest.raises(ValueError, match="already exists"):
        bq.begin_run("s1", "stream", "DataflowRunner", AS_OF, None, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        bq.begin_run("s2", "nightly", "FnApiRunner", dt.datetime(2023, 12, 1), AS_OF)
    with pytest.raises(KeyError):
        bq.finish_run("nope")
    with pytest.raises(ValueError):
        bq.finish_run("s1", "running")
    bq.finish_run("s1", "succeeded", AS_OF)
    assert bq_rows(bq_uri, "SELECT status, finished_at FROM `@ds.pipeline_runs`") == [
        ("succeeded", AS_OF.isoformat())]


# --- schema ------------------------------------------------------------------------


def test_ensure_schema_is_idempotent_and_refuses_drift(bq, bq_uri):
    run(bq, "r1")
    before = bq_content(bq_uri, drop=set())
    bq.ensure_schema(CODES)
    bq.ensure_schema()  # codes from dim_indicator
    assert bq_content(bq_uri, drop=set()) == before
    project, dataset = parse_uri(bq_uri)
    client = emulator_client()
    client.create_dataset("drifted")
    client.query(f"CREATE TABLE `{project}.drifted.dq_alerts` (alert_id STRING NOT NULL)").result()
    with open_warehouse(f"bigquery://{project}/drifted") as w, pytest.raises(
            RuntimeError, match="dq_alerts differs"):
        w.ensure_schema(CODES)
    with open_warehouse(f"bigquery://{project}/missing") as w, pytest.raises(
            RuntimeError, match="does not exist"):
        w.ensure_schema(CODES)


def test_ddl_partitions_and_clusters_indicator_values():
    # The emulator accepts and drops PARTITION BY / CLUSTER BY: check the text.
    ddl = table_ddl("p.ds")
    assert set(ddl) == set(tables.TABLES)
    assert ddl["indicator_values"].startswith("CREATE TABLE IF NOT EXISTS `p.ds.indicator_values`")
    assert ("\nPARTITION BY DATE_TRUNC(period_start, MONTH)\nCLUSTER BY indicator_code, region_code\n"
            in ddl["indicator_values"])
    assert "numerator BIGNUMERIC(38, 6) OPTIONS" in ddl["indicator_values"]
    assert "components JSON OPTIONS" in ddl["indicator_values"]


def test_uris_and_credentials(monkeypatch):
    assert parse_uri("bigquery://my-proj-1/yibao_prod") == ("my-proj-1", "yibao_prod")
    for bad in ("bigquery://proj", "bigquery://proj/ds/x", "bigquery://Proj/ds", "bq://p/d"):
        with pytest.raises(ValueError):
            parse_uri(bad)
    # No endpoint override: Application Default Credentials.
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    adc = AnonymousCredentials()
    monkeypatch.delenv("YIBAO_BIGQUERY_ENDPOINT", raising=False)
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (adc, "adc-project"))
    with open_warehouse("bigquery://my-proj-1/yibao") as w:
        assert isinstance(w, BigQueryWarehouse) and w.ref == "my-proj-1.yibao"
        assert w.client._credentials is adc and w.client.project == "my-proj-1"
        assert w.client._connection.API_BASE_URL == "https://bigquery.googleapis.com"
    monkeypatch.setenv("YIBAO_BIGQUERY_ENDPOINT", "http://127.0.0.1:9")
    with open_warehouse("bigquery://my-proj-1/yibao") as w:
        assert w.client._connection.API_BASE_URL == "http://127.0.0.1:9"
        assert isinstance(w.client._credentials, AnonymousCredentials)
