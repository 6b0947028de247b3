"""A local BigQuery for tests: the ``bqemulator`` package (a BigQuery REST
emulator on DuckDB), started once per session in a subprocess.

Not a conftest.py: import the fixtures from the test module that needs them
(``from tests.conftest_bigquery import bigquery_emulator, bigquery_endpoint  # noqa: F401``).

``python -m tests.conftest_bigquery URL_FILE`` is the launcher: it starts
the emulator on 127.0.0.1 (free ports), writes its URL to URL_FILE and
serves until stdin closes (the parent died or is done) or SIGTERM.

Where the emulator differs from BigQuery, production code keeps BigQuery's
behaviour and the difference is bridged here, each one below:

1. Offline the emulator does not start: it downloads DuckDB's ``spatial``
   extension (GEOGRAPHY). ``_load_spatial`` becomes a no-op (no GEOGRAPHY
   here) and the ``avro`` format extension is not even tried.
2. Query parameters reach single statements but not multi-statement
   scripts (``Values were not provided for the following parameters``),
   and publish's transaction is a script with the Scope's parameters. The
   launcher inlines a script's named scalar parameters as typed literals.
3. Tables created by DDL report the types DuckDB stores: BIGNUMERIC(38, 6)
   comes back as NUMERIC (DECIMAL(38, 9) underneath; creating BIGNUMERIC
   through tables.insert even fails: it maps to DECIMAL(76, 38)) and JSON
   as STRING. ``bigquery_store.REPORTED_TYPES`` tells ensure_schema's drift
   check to expect that (``bigquery_endpoint`` sets it for a test module).
   Values still round-trip exactly at the 6 places we use.
4. PARTITION BY / CLUSTER BY and table expiration are accepted and dropped;
   the DDL text is tested instead (tests/test_bigquery.py).
5. ``ALTER TABLE … ADD COLUMN`` alters the DuckDB table but not the catalog
   tables.get reads (tables.patch, the other way, only the catalog): after
   one, the launcher re-reads the table's schema into the catalog.
6. A copy job creating its destination loses NOT NULL in the DuckDB table
   (the catalog keeps REQUIRED, until a later CREATE TABLE IF NOT EXISTS
   re-reads it): the launcher sets NOT NULL again on the REQUIRED columns.
7. Differences needing no bridge: ``@@error.message`` (an EXCEPTION handler)
   does not parse, but publish has no handler (a failing statement rolls the
   transaction back, in BigQuery and here); query results give JSON columns
   parsed and NUMERIC with 9 places (the tests compare normalised values); the
   emulator logs to stdout, so its URL travels through a file; a 500 from
   it (e.g. tables.insert with BIGNUMERIC) is retried by the client for up to
   10 minutes, which looks like a hang.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "test-project"
STARTUP_SECONDS = 90

# Difference 3: declared (type, precision, scale) -> as the emulator reports it.
EMULATOR_TYPES = {
    ("BIGNUMERIC", 38, 6): ("NUMERIC", None, None),
    ("JSON", None, None): ("STRING", None, None),
}


# --- launcher (runs in the subprocess) ----------------------------------------


def _literal(param: dict) -> str:
    type_ = param["parameterType"]["type"]
    value = (param.get("parameterValue") or {}).get("value")
    if value is None:
        return f"CAST(NULL AS {type_})"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"CAST('{text}' AS {type_})"


def inline_parameters(sql: str, params: list[dict] | None) -> str:
    """Named scalar parameters of ``sql`` replaced by typed literals (difference 2)."""
    named = {p["name"]: _literal(p) for p in params or [] if p.get("name")}
    return re.sub(r"(?<![@\w])@(\w+)", lambda m: named.get(m[1], m[0]), sql)


def _patch_emulator() -> None:
    from bqemulator.jobs import executor
    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None  # difference 1

    run_query_body = executor._run_query_body

    async def with_script_parameters(*, bq_sql, query_params, is_scripted, **kwargs):
        if is_scripted and query_params:
            bq_sql, query_params = inline_parameters(bq_sql, query_params), None
        return await run_query_body(bq_sql=bq_sql, query_params=query_params,
                                    is_scripted=is_scripted, **kwargs)

    async def with_added_columns(*, bq_sql, project_id, ctx, is_scripted, **kwargs):
        result = await with_script_parameters(bq_sql=bq_sql, project_id=project_id, ctx=ctx,
                                              is_scripted=is_scripted, **kwargs)
        if not is_scripted:
            _sync_added_columns(bq_sql, project_id, ctx)  # difference 5
        return result

    executor._run_query_body = with_added_columns

    create_copy_destination = executor._create_copy_destination

    def with_not_null(*, src_meta, dst_ref, ctx, **kwargs):  # difference 6
        create_copy_destination(src_meta=src_meta, dst_ref=dst_ref, ctx=ctx, **kwargs)
        for f in src_meta.schema_.fields:
            if f.mode == "REQUIRED":
                ctx.engine.execute(f'ALTER TABLE {dst_ref} ALTER COLUMN "{f.name}" SET NOT NULL')

    executor._create_copy_destination = with_not_null


def _sync_added_columns(bq_sql: str, project_id: str, ctx) -> None:
    import sqlglot
    from bqemulator.catalog import ddl_sync
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(bq_sql, read="bigquery")
    except sqlglot.errors.SqlglotError:  # the statement ran; only the bridge gives up
        return
    if not (isinstance(tree, exp.Alter)
            and any(isinstance(a, exp.ColumnDef) for a in tree.args.get("actions") or ())):
        return
    ids = ddl_sync._split_target(tree.this, project_id)
    meta = ctx.catalog.get_table(*ids)
    if meta is not None:
        ctx.catalog.update_table(meta.model_copy(
            update={"schema_": ddl_sync._introspect_schema(*ids, ctx)}))


async def _serve(url_file: Path) -> None:
    from bqemulator.config import Settings
    from bqemulator.server import EmulatorServer

    server = EmulatorServer(Settings(
        rest_host="127.0.0.1", rest_port=0, grpc_host="127.0.0.1", grpc_port=0,
        default_project_id=PROJECT, enable_format_extensions=False,
        log_level="warning", log_format="console", metrics_enabled=False))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # stdin closes when the parent goes away, however it ends.
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)),
                     daemon=True).start()
    tmp = url_file.with_suffix(".tmp")
    tmp.write_text(server.rest_url)
    tmp.rename(url_file)  # atomic: the parent never reads half a URL
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str]) -> None:
    _patch_emulator()
    asyncio.run(_serve(Path(argv[0])))


# --- fixtures (run in the test process) ----------------------------------------


def start_emulator(workdir: Path) -> tuple[subprocess.Popen, str]:
    """Starts the launcher; returns the process and the emulator's URL."""
    url_file, log_file = workdir / "url", workdir / "emulator.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.conftest_bigquery", str(url_file)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "BQEMU_LOG_LEVEL": "warning"})
    deadline = time.monotonic() + STARTUP_SECONDS
    while not url_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_emulator(proc)
            raise RuntimeError(f"bqemulator did not start:\n{log_file.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc, url_file.read_text()


def stop_emulator(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdin:
        proc.stdin.close()


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory):
    """The running emulator's URL (one per test session)."""
    proc, url = start_emulator(tmp_path_factory.mktemp("bqemulator"))
    try:
        yield url
    finally:
        stop_emulator(proc)


@pytest.fixture(scope="module")
def bigquery_endpoint(bigquery_emulator):
    """For the module's tests, ``bigquery://test-project/…`` warehouses talk to
    the emulator (YIBAO_BIGQUERY_ENDPOINT) and expect its types (difference 3)."""
    from warehouse import bigquery_store

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(bigquery_store.ENDPOINT_ENV, bigquery_emulator)
        mp.setattr(bigquery_store, "REPORTED_TYPES", EMULATOR_TYPES)
        yield bigquery_emulator


def emulator_client():
    """A google-cloud-bigquery client on the emulator (inside ``bigquery_endpoint``)."""
    from warehouse.bigquery_store import make_client

    return make_client(PROJECT)


def new_dataset(prefix: str = "t") -> str:
    """A fresh, empty dataset on the emulator (inside ``bigquery_endpoint``): its name."""
    import uuid

    dataset = f"{prefix}_{uuid.uuid4().hex[:10]}"
    client = emulator_client()
    client.create_dataset(dataset)
    client.close()
    return dataset


if __name__ == "__main__":
    main(sys.argv[1:])
