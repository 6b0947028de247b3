"""Issue 16 items 2 and 6 on the deploy side: the schedules close a failed or
cancelled job's run and delete its staged files (the close statement run on
bqemulator), and the deploy defaults fit the data — worker machine type, disk
and the compute step's memory limit derived from each other, the launcher
image pinned."""
from __future__ import annotations

import ast
import datetime as dt
import re
import uuid
from pathlib import Path

import pytest
import yaml

from pipelines import nightly, sizing
from pipelines.errors import UsageError
from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
)
from tests.test_bigquery import bq_rows

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DAG_PATH = DEPLOY / "airflow" / "yibao_nightly.py"
WORKFLOW = yaml.safe_load((DEPLOY / "schedule" / "nightly-workflow.yaml").read_text())
STEPS = {k: v for step in WORKFLOW["main"]["steps"] for k, v in step.items()}


def dag_launch() -> tuple[dict, dict, ast.Module]:
    """(the operator's keyword arguments as source text, its launchParameter, the tree)."""
    tree = ast.parse(DAG_PATH.read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and n.func.id == "DataflowStartFlexTemplateOperator")
    kw = {k.arg: k.value for k in call.keywords}
    return ({k: ast.unparse(v) for k, v in kw.items()},
            ast.literal_eval(kw["body"])["launchParameter"], tree)


def launches() -> dict[str, dict]:
    return {"airflow": dag_launch()[1], "workflows": STEPS["launch"]["args"]["body"]["launchParameter"]}


# --- worker size ------------------------------------------------------------------


def test_memory_limit_machine_type_and_disk_are_derived_from_each_other():
    """Was: "--compute_memory_limit defaults to 4GB, more than a default worker
    has", and the schedules set no machine type or disk."""
    for name, launch in launches().items():
        machine = launch["environment"]["machineType"]
        memory = sizing.machine_memory_gb(machine)
        assert launch["environment"]["diskSizeGb"] == sizing.disk_size_gb(machine), name
        assert launch["parameters"]["compute_memory_limit"] == sizing.memory_limit(memory), name
        assert machine == sizing.DEPLOY_MACHINE_TYPE and memory >= 32  # PERFORMANCE.md: highmem, ≥ 8 vCPU
    # The pipeline's own default under Dataflow fits the worker it runs on.
    for machine in (None, "n1-standard-1", "n2-highmem-8", "e2-standard-4", "n2-custom-6-24576"):
        limit = sizing.compute_memory_limit(None, "DataflowRunner", machine)
        gb = sizing.machine_memory_gb(machine or sizing.DATAFLOW_DEFAULT_MACHINE_TYPE)
        assert int(limit.removesuffix("MB")) / 1024 == pytest.approx(gb * sizing.MEMORY_FRACTION, abs=0.01)
        assert int(limit.removesuffix("MB")) / 1024 < gb
    assert sizing.machine_memory_gb("n1-standard-1") == 3.75
    assert sizing.compute_memory_limit("12GB", "DataflowRunner", "n1-standard-1") == "12GB"
    assert sizing.disk_size_gb("n1-standard-1") == sizing.MIN_DISK_GB
    with pytest.raises(ValueError, match="unknown machine type 'z9-mega-3'"):
        sizing.machine_memory_gb("z9-mega-3")


def test_unknown_machine_type_is_one_line_for_the_operator(tmp_path):
    with pytest.raises(UsageError, match="unknown machine type 'z9-mega-3'"):
        nightly.run(["--input", str(tmp_path), "--warehouse", "bigquery://p/d", "--runner",
                     "DataflowRunner", "--staging", "gs://yibao-w/s", "--quarantine", "gs://yibao-w/q",
                     "--worker_machine_type", "z9-mega-3", "--as-of", "2023-03-31T23:59:59+08:00"])


def test_launcher_image_is_pinned():
    """Was: "the launcher image is :latest"."""
    text = (DEPLOY / "Dockerfile").read_text()
    images = re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.M)
    assert {n for n, _ in images} == {"BEAM_IMAGE", "LAUNCHER_IMAGE"}
    for name, image in images:
        assert ":latest" not in image and re.search(r"(@sha256:[0-9a-f]{64}|:[\w.-]*\d[\w.-]*)$", image), name
    assert "latest" not in "".join(line for line in text.splitlines() if line.startswith("FROM"))


# --- run bookkeeping by the schedules ------------------------------------------------


def test_schedules_give_each_attempt_a_run_id_and_close_failed_jobs():
    kw, airflow, _ = dag_launch()
    assert airflow["parameters"]["run_id"] == "{{ macros.uuid.uuid4() }}"  # rendered per attempt
    assert kw["on_failure_callback"] == kw["on_retry_callback"] == "close_failed_run"
    assert kw["wait_until_finished"] == "True"  # the task fails when the job fails or is cancelled
    init = {k: v for a in STEPS["init"]["assign"] for k, v in a.items()}
    assert init["run_id"] == "${uuid.generate()}"
    assert STEPS["launch"]["args"]["body"]["launchParameter"]["parameters"]["run_id"] == "${run_id}"
    # The workflow waits for the job: done evaluates the alerts (tests/test_schedule_alerts.py),
    # failed or cancelled closes the run.
    conds = {c["condition"]: c for c in STEPS["job_ended"]["switch"]}
    assert conds['${job.currentState == "JOB_STATE_DONE"}'].get("next") == "evaluate_alerts"
    failed = next(c for k, c in conds.items() if "JOB_STATE_FAILED" in k)
    assert "JOB_STATE_CANCELLED" in next(k for k in conds if "JOB_STATE_FAILED" in k)
    assert failed["next"] == "close_run" and STEPS["wait"]["next"] == "read_job"
    # The staged files of the run: <WORK path>/staging/<run_id>/ in WORK's bucket.
    assert init["staged_prefix"].endswith('+ "/staging/" + run_id + "/"}')
    assert STEPS["delete_staged"]["next"] == "list_staged" and "raise" in STEPS["failed"]


def close_statements(dataset: str) -> dict[str, str]:
    """The close statement of each schedule, for ``dataset``."""
    _, _, tree = dag_launch()
    dag_sql = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", "") == "CLOSE_RUN_SQL" for t in n.targets))
    expr = STEPS["close_run"]["args"]["body"]["query"]
    assert expr.startswith("${") and expr.endswith("}")
    # A Workflows expression of string literals and `+`: Python reads it the same way.
    wf_sql = eval(expr[2:-1], {"__builtins__": {}}, {"dataset": dataset})  # noqa: S307
    return {"airflow": dag_sql.format(dataset=dataset), "workflows": wf_sql}


def test_close_statement_closes_only_a_running_row(bigquery_endpoint):  # noqa: F811
    from google.cloud import bigquery

    from warehouse import open_warehouse

    dataset = f"close_{uuid.uuid4().hex[:8]}"
    client = emulator_client()
    client.create_dataset(dataset)
    uri = f"bigquery://{PROJECT}/{dataset}"
    statements = close_statements(dataset)
    assert statements["airflow"] == statements["workflows"]
    now = dt.datetime.now(dt.UTC)
    with open_warehouse(uri) as wh:
        wh.ensure_schema()
        for run in ("dead-job", "done-job", "live-other"):
            wh.begin_run(run, "nightly", "DataflowRunner", now, now, {})
        wh.finish_run("done-job", "succeeded")
    for name, sql in statements.items():
        for run in ("dead-job", "done-job"):
            client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=[
                bigquery.ScalarQueryParameter("run_id", "STRING", run),
                bigquery.ScalarQueryParameter("error", "STRING", f"Dataflow job ended JOB_STATE_CANCELLED ({name})"),
            ])).result()
    client.close()
    got = {r[0]: r[1:] for r in bq_rows(uri, "SELECT run_id, status, error, finished_at IS NULL "
                                              "FROM `@ds.pipeline_runs`")}
    assert got == {
        "dead-job": ("failed", "Dataflow job ended JOB_STATE_CANCELLED (airflow)", False),
        "done-job": ("succeeded", None, False),  # the job closed it: never overwritten
        "live-other": ("running", None, True),
    }


def test_run_id_from_an_orchestrator_is_checked(tmp_path):
    with pytest.raises(UsageError, match="--run_id '../x'"):
        nightly.run(["--input", str(tmp_path), "--run_id", "../x", "--as-of", "2023-03-31T23:59:59+08:00",
                     "--warehouse", f"duckdb:///{tmp_path}/w.duckdb"])
    assert not (tmp_path / "w.duckdb").exists()


def test_lifecycle_rule_covers_the_staging_prefix_of_the_runbook():
    """The backstop for staged files nobody deleted (their personal data)."""
    import json

    from tests.test_deploy import RUNBOOK, runbook_env

    env = runbook_env()
    bucket, _, path = env["WORK"].removeprefix("gs://").partition("/")
    assert bucket == env["BUCKET"]
    (rule,) = json.loads((DEPLOY / "lifecycle.json").read_text())["rule"]
    assert rule["action"] == {"type": "Delete"}
    assert rule["condition"]["matchesPrefix"] == [f"{path}/staging/"]
    assert 1 <= rule["condition"]["age"] <= 7
    assert "--lifecycle-file=deploy/lifecycle.json" in RUNBOOK
    # The schedules stage under that prefix.
    for launch in launches().values():
        assert launch["parameters"]["staging"] in ("{{ var.value.yibao_work }}/staging",
                                                   '${work + "/staging"}')
