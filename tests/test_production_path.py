"""Issue 16, the production path end to end offline: gs:// in (fake-gcs-server),
the flex template's entry point running the job, BigQuery out (bqemulator).

Select with ``pytest -k production_path``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from rich.console import Console

import reference
import schemas
from datagen.generate import generate
from pipelines import job_graph, nightly
from pipelines.config import load_config
from pipelines.errors import UsageError
from tests.builders import copy_reference
from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
)
from tests.conftest_gcs import gcs_emulator, gcs_server  # noqa: F401 - fixtures
from tests.test_bigquery import VOLATILE, _norm, _select, bq_rows, duck_rows

ROOT = Path(__file__).resolve().parents[1]


def test_production_path_reference_and_config_read_from_gs(gcs_emulator, tmp_path):  # noqa: F811
    """Was: ``--input gs://bucket/landing`` failed with ``reference file missing:
    gs:/bucket/landing/reference/regions.csv`` (pathlib folded ``gs://``), and
    ``--config gs://…`` was read with pathlib too."""
    bucket = gcs_emulator.bucket("yibao-ref")
    copy_reference(tmp_path / "landing")
    (tmp_path / "conf" / "nightly.yaml").parent.mkdir()
    (tmp_path / "conf" / "nightly.yaml").write_text("parameters:\n  settlement_list_days: 21\n")
    gcs_emulator.upload_tree(tmp_path / "landing", f"{bucket}/landing")
    gcs_emulator.upload_tree(tmp_path / "conf", f"{bucket}/conf")

    ref = reference.load(f"{bucket}/landing/reference")
    local = reference.load(tmp_path / "landing" / "reference")
    assert ref.regions == local.regions and ref.institutions == local.institutions
    assert str(ref.directory) == f"{bucket}/landing/reference"
    assert load_config(f"{bucket}/conf/nightly.yaml").parameters["settlement_list_days"] == 21
    with pytest.raises(UsageError, match=r"--config gs://yibao-ref/conf/absent.yaml: cannot read it"):
        load_config(f"{bucket}/conf/absent.yaml")
    with pytest.raises(reference.ReferenceError, match="gs://yibao-ref/nowhere/regions.csv"):
        reference.load(f"{bucket}/nowhere")


# --- the whole path: gs:// landing -> flex entry point -> BigQuery ----------------

PROJECT_DATASET = "yibao_prod"
CONFIG = "targets:\n  I08:\n    default: 0.97\n"
# Tables whose every row must be the same in BigQuery (gs:// run) and DuckDB
# (local run); paths in dead_letters are compared relative to their roots.
COMPARED = ("indicator_values", "quality_rule_results", "quality_failures", "dead_letters",
            "pipeline_run_streams", "dim_region", "dim_indicator", "dim_quality_rule")


def _main():
    spec = importlib.util.spec_from_file_location("flex_main", ROOT / "deploy" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def production_run(gcs_emulator, bigquery_endpoint, tmp_path_factory):  # noqa: F811
    """One night through the production path and the same night locally."""
    work = tmp_path_factory.mktemp("production")
    landing = work / "landing"
    generate(landing, persons=200, months="2022-01..2023-06", console=Console(file=io.StringIO()))
    as_of = (landing / "as_of.txt").read_text().strip()
    (work / "nightly.yaml").write_text(CONFIG)
    gs_landing = gcs_emulator.upload_tree(landing, gcs_emulator.bucket("yibao-landing") + "/nightly")
    gs_config = gcs_emulator.bucket("yibao-config") + "/nightly.yaml"
    with FileSystems.create(gs_config, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(CONFIG.encode())
    gs_work = gcs_emulator.bucket("yibao-work") + "/nightly"
    client = emulator_client()
    client.create_dataset(PROJECT_DATASET)
    client.close()
    bq_uri = f"bigquery://{PROJECT}/{PROJECT_DATASET}"
    # As the flex template launcher calls the entry point: --name=value, booleans as text.
    argv = [f"--input={gs_landing}", f"--warehouse={bq_uri}", f"--as_of={as_of}",
            f"--config={gs_config}", f"--staging={gs_work}/staging",
            f"--quarantine={gs_work}/quarantine", "--no_alerts=true", "--json=true",
            "--quiet=false"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_id = _main().main(argv)
    local_wh = work / "local.duckdb"
    nightly.run(["--input", str(landing), "--warehouse", f"duckdb:///{local_wh}", "--as-of", as_of,
                 "--config", str(work / "nightly.yaml"), "--staging", str(work / "staging"),
                 "--quarantine", str(work / "quarantine"), "--no_alerts", "--quiet"])
    return {"run_id": run_id, "summary": json.loads(out.getvalue().splitlines()[-1]),
            "argv": argv, "bq_uri": bq_uri, "gs_work": gs_work, "gs_landing": gs_landing,
            "landing": landing, "local_wh": local_wh, "work": work}


def _relative(rows: list[tuple], roots: tuple[str, ...]) -> list[tuple]:
    def rel(v):
        if isinstance(v, str):
            for r in roots:
                v = v.replace(r, "<root>")
        return v
    return sorted((tuple(rel(v) for v in r) for r in rows), key=repr)


def test_production_path_same_warehouse_content_as_a_local_run(production_run):
    """gs:// landing, reference and config, gs:// staging and quarantine, the
    flex entry point, BigQuery out: every table equals the local DuckDB run's."""
    r = production_run
    roots = (r["gs_landing"], r["gs_work"] + "/quarantine", str(r["landing"]),
             str(r["work"] / "quarantine"))
    for name in COMPARED:
        got = _relative(bq_rows(r["bq_uri"], _select(name, VOLATILE)), roots)
        want = _relative(duck_rows(r["local_wh"], _select(name, VOLATILE)), roots)
        assert got == want, name
        assert got, f"{name} is empty: the comparison would prove nothing"
    assert r["summary"]["status"] == "succeeded" and r["summary"]["run_id"] == r["run_id"]


def test_production_path_job_records_itself_and_leaves_no_staged_files(production_run, gcs_emulator):  # noqa: F811
    """Was: the row said succeeded with 0 rows for a launch that returned at
    once, and "remove_staging runs before anything is staged, so each night's
    staged Parquet (with certno and psn_name) is left on gs://"."""
    r = production_run
    runs = bq_rows(r["bq_uri"], "SELECT run_id, status, error, runner FROM `@ds.pipeline_runs`")
    assert runs == [(r["run_id"], "succeeded", None, "FnApiRunner")]
    assert gcs_emulator.names(f"{r['gs_work']}/staging") == []  # the run's prefix and its summary
    quarantined = gcs_emulator.names(f"{r['gs_work']}/quarantine")
    dead = bq_rows(r["bq_uri"], "SELECT quarantine_path FROM `@ds.dead_letters`")
    assert dead and {p for (p,) in dead} <= set(quarantined)


def test_production_path_dataflow_graph_of_the_same_command_offline(production_run, tmp_path):
    """The same launcher command with ``--runner=DataflowRunner --dry_run=True``:
    the whole Dataflow job is built without network (and without a run row)."""
    r = production_run
    job_file = tmp_path / "job.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_id = _main().main([*r["argv"], "--runner=DataflowRunner", "--dry_run=True", "--no_auth",
                               "--sdk_location=container", "--project=yibao-test",
                               "--region=asia-east2", "--worker_machine_type=n2-highmem-8",
                               # the scale-out configuration of docs/PERFORMANCE.md for 10^9
                               "--shards=2048", "--max_num_workers=256",
                               f"--temp_location={r['gs_work']}/tmp",
                               f"--dataflow_job_file={job_file}"])
    assert "dry run" in out.getvalue()
    written = json.loads(job_file.read_text())
    steps = {t["uniqueName"] for t in written["pipeline"]["components"]["transforms"].values()}
    labels = [s.title().replace("_", "") for s in schemas.STREAM_NAMES]
    for step in ("ComputeShards", "SumParts", "Finalize", "AllDeadLetters", "Publish", "RemoveStaging",
                 *(f"Read{x}" for x in labels), *(f"Route{x}" for x in labels)):
        assert step in steps, step
    # Issue 17: "no step whose input is the whole data set" (pipelines/job_graph.py).
    assert job_graph.whole_data_inputs(written["pipeline"]) == []
    envs = written["pipeline"]["components"]["environments"].values()
    assert any(e["urn"] == "beam:env:docker:v1" for e in envs)
    # Nothing ran: no pipeline_runs row for the dry run.
    assert run_id not in {x for (x,) in bq_rows(r["bq_uri"], "SELECT run_id FROM `@ds.pipeline_runs`")}


def test_production_path_template_launch_never_writes_succeeded(production_run, gcs_emulator, capsys):  # noqa: F811
    """Was: "A template launch (or any non-blocking run) returns at once: the
    row says succeeded with 0 rows". Here DataflowRunner writes a template
    (``--template_location``) and returns without a job, as a launcher that
    does not wait: the row stays ``running`` for the job to close, and the
    launcher says "submitted"."""
    r = production_run
    template = f"{r['gs_work']}/templates/night.json"
    run_id = _main().main([*r["argv"], "--runner=DataflowRunner", "--no_auth",
                           "--sdk_location=container", "--project=yibao-test", "--region=asia-east2",
                           f"--temp_location={r['gs_work']}/tmp", f"--template_location={template}",
                           "--run_id=11111111-2222-4333-8444-555555555555"])
    assert run_id == "11111111-2222-4333-8444-555555555555"
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["status"] == "submitted" and summary["run_id"] == run_id
    assert bq_rows(r["bq_uri"], "SELECT status, finished_at FROM `@ds.pipeline_runs` "
                   f"WHERE run_id = '{run_id}'") == [("running", None)]
    assert gcs_emulator.names(template.rsplit("/", 1)[0]) == [template]


def _plain(records: list[dict], drop=("run_id", "computed_at", "alert_id", "raised_at", "channels")) -> list:
    out = []
    for rec in records:
        out.append(tuple(sorted((k, _norm(k, v)) for k, v in rec.items() if k not in drop)))
    return sorted(out, key=repr)


def test_production_path_report_and_query_read_bigquery_as_duckdb(production_run, capsys):
    """Analysts on the BigQuery warehouse the job wrote (the report's queries,
    ``yibao query``) see what they see on the local DuckDB run of the same input."""
    from pipelines import cli
    from report import data

    r = production_run
    period = data.Period(2023, 6)
    seen = {}
    for engine, uri in _uris(r).items():
        with data.reading(uri) as con:
            province = data.region(con, "640000")
            seen[engine] = {
                "values": _plain(data.values(con, ["640000", "640100", "640104"], period, "MONTH")),
                "ytd": _plain(data.values(con, ["640000"], period, "YTD")),
                "rules": _plain(data.rule_results(con, "640000", period, "MONTH")),
                "trend": _plain(data.trend(con, "640000", 2023)),
                "peers": [p.code for p in data.peers(con, province)],
            }
        capsys.readouterr()
        assert cli.main(["query", "--warehouse", uri, "--format", "csv",
                         "SELECT indicator_code, region_code, period_type, period_start, period_end, "
                         "numerator, denominator, value FROM indicator_values ORDER BY 1, 2, 3, 4, 5"]
                        ) in (0, None)
        seen[engine]["query"] = capsys.readouterr().out
    for part in seen["duckdb"]:
        assert seen["bigquery"][part] == seen["duckdb"][part], part
        assert seen["duckdb"][part], f"{part} is empty: the comparison would prove nothing"
    # The report file to gs:// (report output goes through FileSystems too).
    target = f"{r['gs_work']}/reports/640000-2023-06.html"
    assert cli.main(["report", "--warehouse", _uris(r)["duckdb"], "--region", "640000", "--period",
                     "2023-06", "--out", target]) in (0, None)
    with FileSystems.open(target, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        html = fh.read().decode("utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "宁夏" in html


def _uris(r: dict) -> dict[str, str]:
    return {"bigquery": r["bq_uri"], "duckdb": f"duckdb:///{r['local_wh']}"}
