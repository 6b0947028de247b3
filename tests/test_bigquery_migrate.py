"""An upgrade keeps a BigQuery warehouse's history, as a DuckDB file's.

docs/DECISIONS.md said: "An older DuckDB file gets the column filled with
'nightly' (tables.BACKFILL; the one NOT NULL migration).  BigQuery tables need
`ALTER TABLE … ADD COLUMN pipeline STRING; UPDATE … SET pipeline='nightly'`
(no auto-migration there)." — so a dataset written by an older release failed
with "table … differs from warehouse/tables.py; have …, want … (migrate or use
a new dataset)".  Now ensure_schema does the same one migration on both
engines, from tables.TABLES + tables.BACKFILL (tables.appended_columns):
appended nullable columns are added, appended NOT NULL ones with a BACKFILL
value filled in (BigQuery: the table rebuilt), anything else still fails.

On the real emulator (tests/conftest_bigquery.py) and real DuckDB files.
"""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
    new_dataset,
)
from tests.test_warehouse import CODES, NOV, SCOPES, content
from warehouse import DuckDBWarehouse, open_warehouse, tables
from warehouse.bigquery_store import MIGRATING, _fields, _wanted
from warehouse.duckdb_store import connect
from warehouse.tables import (
    BACKFILL,
    TABLES,
    appended_columns,
    bigquery_column_ddl,
    bigquery_schema,
)

AS_OF = dt.datetime(2023, 11, 30, 16, 0, tzinfo=dt.UTC)
DIFFERS = "differs from warehouse/tables.py"

# What an older release lacked: the trailing columns of three tables.
# quality_rule_results / quality_failures: `pipeline` (NOT NULL, BACKFILL
# 'nightly'), quality_failures also its nullable fixmedins_code / matter_code,
# indicator_values its nullable `provisional` (ALTER TABLE ADD COLUMN).
OLDER = {"quality_rule_results": 1, "quality_failures": 3, "indicator_values": 1}

# A few rows of the older release (October: outside content()'s November).
OLD_ROWS = {
    "quality_rule_results": [
        "('E01', 'settlement', '640000', 'province', 'MONTH', DATE '2023-10-01', DATE '2023-10-31',"
        " 100, 3, 0.97, 'r-old', TIMESTAMP '2023-11-01 00:00:00+00')",
        "('T02', 'contribution', '640100', 'pooling', 'MONTH', DATE '2023-10-01', DATE '2023-10-31',"
        " 0, 0, NULL, 'r-old', TIMESTAMP '2023-11-01 00:00:00+00')",
    ],
    "quality_failures": [
        "('contribution', 'k-1', 'T02', '640100', DATE '2023-10-05', JSON '{\"amount\": \"-1.00\"}', 'r-old')",
        "('contribution', 'k-2', 'T02', NULL, NULL, NULL, 'r-old')",
    ],
    "indicator_values": [
        "('I08', '640000', 'province', 'MONTH', DATE '2023-10-01', DATE '2023-10-31', 99, 100, 0.99,"
        " 0.95, '>=', TRUE, NULL, TIMESTAMP '2023-10-31 16:00:00+00', 'nightly', 'r-old',"
        " TIMESTAMP '2023-11-01 00:00:00+00')",
    ],
}


def _older_ddl(ref: str, name: str, drop: int, table_id: str | None = None,
               retype: dict[str, str] | None = None) -> str:
    """Table ``name`` as an older release created it: without its last ``drop``
    columns (and with columns of ``retype`` declared another type)."""
    t = TABLES[name]
    fields = bigquery_schema(name)[: len(t.columns) - drop]
    cols = ",\n".join(
        f"  {f.name} {retype[f.name]}" if f.name in (retype or {}) else f"  {bigquery_column_ddl(f)}"
        for f in fields)
    sql = f"CREATE TABLE `{ref}.{table_id or name}` (\n{cols}\n)"
    if t.partition_month:
        sql += f"\nPARTITION BY DATE_TRUNC({t.partition_month}, MONTH)"
    if t.cluster_by:
        sql += f"\nCLUSTER BY {', '.join(t.cluster_by)}"
    return sql


@pytest.fixture
def ref(bigquery_endpoint):  # noqa: F811 - the imported fixture
    """A fresh dataset, ``project.dataset``."""
    return f"{PROJECT}.{new_dataset('m')}"


@pytest.fixture
def client(bigquery_endpoint):  # noqa: F811
    c = emulator_client()
    yield c
    c.close()


def older_release(client, ref: str, retype: dict[str, str] | None = None) -> None:
    """``ref`` as an older release left it: every table, three lacking their
    trailing columns, with OLD_ROWS in them."""
    for name in TABLES:
        client.query(_older_ddl(ref, name, OLDER.get(name, 0), retype=(retype or {}).get(name))).result()
    for name, values in OLD_ROWS.items():
        client.query(f"INSERT INTO `{ref}.{name}` VALUES\n" + ",\n".join(values)).result()


def select(client, ref: str, name: str, cols: list[str], alias: str = "") -> list[tuple]:
    sql = f"SELECT {', '.join(cols)} FROM `{ref}.{name}` {alias}"
    return sorted((tuple(r.values()) for r in client.query(sql).result()), key=repr)


def table_ids(client, ref: str) -> set[str]:
    return {t.table_id for t in client.list_tables(ref)}


def migration_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "warehouse.bigquery_store" and "migrat" in r.getMessage()]


# --- the shared rule ------------------------------------------------------------


def test_appended_columns_is_the_one_migration():
    qf = [c.name for c in TABLES["quality_failures"].columns]
    assert [c.name for c in appended_columns("quality_failures", qf[:-3])] == qf[-3:]
    assert [c.name for c in appended_columns("indicator_values",
                                             TABLES["indicator_values"].column_names[:-1])] == ["provisional"]
    assert appended_columns("quality_failures", qf) == ()  # nothing to add
    assert appended_columns("quality_failures", qf[1:-3]) == ()  # a leading column removed
    assert appended_columns("quality_failures", [qf[1], qf[0], *qf[2:-3]]) == ()  # reordered
    # A NOT NULL column without a BACKFILL value: nothing (the check fails instead).
    ib = TABLES["indicator_breakdown"].column_names
    assert ib[-1] == "computed_at" and ("indicator_breakdown", "computed_at") not in BACKFILL
    assert appended_columns("indicator_breakdown", ib[:-1]) == ()
    assert appended_columns("indicator_breakdown", ib[:-3]) == ()  # even with nullable ones before


# --- BigQuery ----------------------------------------------------------------------


def test_an_older_bigquery_dataset_is_migrated_and_keeps_its_rows(ref, client, caplog):
    """Was: RuntimeError "table quality_rule_results differs from
    warehouse/tables.py; have …, want … (migrate or use a new dataset)", and
    DECISIONS.md: "BigQuery tables need `ALTER TABLE … ADD COLUMN pipeline
    STRING; UPDATE … SET pipeline='nightly'` (no auto-migration there)"."""
    older_release(client, ref)
    caplog.set_level(logging.INFO, logger="warehouse.bigquery_store")
    with open_warehouse(f"bigquery://{ref.replace('.', '/')}") as w:
        w.ensure_schema(CODES)
    for name in TABLES:  # every table as tables.py declares it now
        assert _fields(client.get_table(f"{ref}.{name}").schema) == _wanted(name), name
    assert not any(t.endswith(MIGRATING) for t in table_ids(client, ref))
    # Every row kept; the NOT NULL column filled with BACKFILL's value, the nullable ones null.
    assert select(client, ref, "quality_rule_results",
                  ["rule_id", "region_code", "checked", "failed", "pass_rate", "run_id", "pipeline"]) == [
        ("E01", "640000", 100, 3, 0.97, "r-old", "nightly"),
        ("T02", "640100", 0, 0, None, "r-old", "nightly")]
    assert select(client, ref, "quality_failures",
                  ["record_key", "region_code", "business_date", "TO_JSON_STRING(details)", "run_id",
                   "pipeline", "fixmedins_code", "matter_code"]) == [
        ("k-1", "640100", dt.date(2023, 10, 5), '{"amount":"-1.00"}', "r-old", "nightly", None, None),
        ("k-2", None, None, None, "r-old", "nightly", None, None)]
    assert select(client, ref, "indicator_values",
                  ["indicator_code", "numerator", "pipeline", "provisional"]) == [
        ("I08", Decimal(99), "nightly", None)]
    # One line per migrated table, naming columns and the fill value, no row data.
    lines = migration_lines(caplog)
    assert len(lines) == 3 and all(ref in line for line in lines)
    assert any("quality_rule_results" in x and "pipeline" in x and "'nightly'" in x for x in lines)
    assert any("quality_failures" in x and "pipeline, fixmedins_code, matter_code" in x for x in lines)
    assert any("indicator_values" in x and "provisional" in x and "nightly" not in x for x in lines)
    assert not any("k-1" in x or "640100" in x for x in lines)

    # A second ensure_schema changes nothing: no migration, same schemas and rows.
    # (Not compared: tables.get's creationTime, which the emulator renews on
    # every CREATE TABLE IF NOT EXISTS.)
    def state():
        return {n: (_fields(client.get_table(f"{ref}.{n}").schema),
                    select(client, ref, n, ["TO_JSON_STRING(t)"], alias="t")) for n in OLDER}

    before = state()
    caplog.clear()
    with open_warehouse(f"bigquery://{ref.replace('.', '/')}") as w:
        w.ensure_schema(CODES)
        assert migration_lines(caplog) == []
        assert state() == before
        assert not any(t.endswith(MIGRATING) for t in table_ids(client, ref))
        # The migrated dataset takes the next run: the old history stays beside it.
        w.begin_run("r-new", "nightly", "FnApiRunner", AS_OF, AS_OF, {})
        w.publish("r-new", content(), SCOPES)
        w.finish_run("r-new", "succeeded", AS_OF)
    got = select(client, ref, "quality_rule_results", ["run_id", "period_start", "pipeline"])
    assert ("r-old", dt.date(2023, 10, 1), "nightly") in got
    assert ("r-new", NOV[0], "nightly") in got
    assert ("k-1", "r-old") in select(client, ref, "quality_failures", ["record_key", "run_id"])


@pytest.mark.parametrize("change", ["retyped", "removed"])
def test_other_drift_still_fails_and_changes_nothing(ref, client, change):
    """A column retyped, or one removed before the appended ones, is not the
    one migration: "table quality_rule_results differs from
    warehouse/tables.py; have …, want … (migrate or use a new dataset)"."""
    if change == "retyped":
        older_release(client, ref, retype={"quality_rule_results": {"checked": "FLOAT64"}})
    else:
        older_release(client, ref)
        client.query(f"DROP TABLE `{ref}.quality_rule_results`").result()
        cols = [f for f in bigquery_schema("quality_rule_results") if f.name not in ("pass_rate", "pipeline")]
        client.query(f"CREATE TABLE `{ref}.quality_rule_results` (\n"
                     + ",\n".join(bigquery_column_ddl(f) for f in cols) + "\n)").result()
    before = _fields(client.get_table(f"{ref}.quality_rule_results").schema)
    with open_warehouse(f"bigquery://{ref.replace('.', '/')}") as w, pytest.raises(
            RuntimeError, match=rf"table quality_rule_results {DIFFERS};"
                                r" have .*, want .* \(migrate or use a new dataset\)"):
        w.ensure_schema(CODES)
    assert _fields(client.get_table(f"{ref}.quality_rule_results").schema) == before
    assert not any(t.endswith(MIGRATING) for t in table_ids(client, ref))


def test_an_interrupted_rebuild_is_redone(ref, client):
    """Stopped after filling part of quality_failures__migrating, the old
    table intact: the leftover is dropped and the rebuild redone."""
    older_release(client, ref)
    mig = f"quality_failures{MIGRATING}"
    client.query(tables.bigquery_ddl("quality_failures", ref, mig)).result()
    client.query(f"INSERT INTO `{ref}.{mig}` (stream, record_key, rule_id, run_id, pipeline)"
                 " VALUES ('contribution', 'k-1', 'T02', 'r-old', 'nightly')").result()
    with open_warehouse(f"bigquery://{ref.replace('.', '/')}") as w:
        w.ensure_schema(CODES)
    assert select(client, ref, "quality_failures", ["record_key", "pipeline"]) == [
        ("k-1", "nightly"), ("k-2", "nightly")]
    assert mig not in table_ids(client, ref)


def test_a_rebuild_interrupted_after_the_drop_is_finished(ref, client):
    """Stopped after dropping the old table: its rows live only in the full
    quality_rule_results__migrating, which then replaces it (not a new empty
    table, not dropped)."""
    older_release(client, ref)
    mig = f"quality_rule_results{MIGRATING}"
    client.query(tables.bigquery_ddl("quality_rule_results", ref, mig)).result()
    cols = TABLES["quality_rule_results"].column_names[:-1]
    client.query(f"INSERT INTO `{ref}.{mig}` ({', '.join(cols)}, pipeline)"
                 f" SELECT {', '.join(cols)}, 'nightly' FROM `{ref}.quality_rule_results`").result()
    client.delete_table(f"{ref}.quality_rule_results")
    with open_warehouse(f"bigquery://{ref.replace('.', '/')}") as w:
        w.ensure_schema(CODES)
    assert _fields(client.get_table(f"{ref}.quality_rule_results").schema) == _wanted("quality_rule_results")
    assert client.get_table(f"{ref}.quality_rule_results").description == \
        TABLES["quality_rule_results"].description
    assert select(client, ref, "quality_rule_results", ["rule_id", "run_id", "pipeline"]) == [
        ("E01", "r-old", "nightly"), ("T02", "r-old", "nightly")]
    assert mig not in table_ids(client, ref)


# --- DuckDB: the same rule -------------------------------------------------------


def test_an_older_duckdb_file_gets_the_same_migration(tmp_path):
    """With rows in the table, the backfill failed: "TransactionContext Error:
    Cannot create index with outstanding updates" (UPDATE, then SET NOT NULL,
    in ensure_schema's one transaction)."""
    path = tmp_path / "old.duckdb"
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema(CODES)
    con = connect(str(path))
    for name, drop in OLDER.items():
        for c in TABLES[name].columns[len(TABLES[name].columns) - drop:]:
            con.execute(f"ALTER TABLE {name} DROP COLUMN {c.name}")
    con.execute("INSERT INTO quality_failures VALUES ('contribution', 'k-1', 'T02', NULL, NULL, NULL, 'r-old')")
    con.close()
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema(CODES)
        assert wh.con.execute(
            "SELECT record_key, pipeline, fixmedins_code, matter_code FROM quality_failures").fetchall() == [
            ("k-1", "nightly", None, None)]
        have = wh.con.execute("SELECT column_name FROM information_schema.columns"
                              " WHERE table_name = 'indicator_values' ORDER BY ordinal_position").fetchall()
        assert [r[0] for r in have] == TABLES["indicator_values"].column_names
        # NOT NULL, and no default left behind: a writer must still say which pipeline.
        assert wh.con.execute(
            "SELECT is_nullable, column_default FROM information_schema.columns"
            " WHERE table_name = 'quality_failures' AND column_name = 'pipeline'").fetchall() == [
            ("NO", None)]
