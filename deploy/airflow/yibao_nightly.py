"""Airflow (Cloud Composer) DAG: the nightly refresh as a Dataflow Flex Template job.

The alternative to deploy/schedule/ (Cloud Scheduler + Workflows): use one,
not both. Copy this file into the environment's dags/ folder and set the
Airflow Variables below (deploy/RUNBOOK.md "Schedule").

as_of comes from the logical date: with CronTriggerTimetable the logical
date is the trigger time (00:30 Asia/Shanghai), and the run computes up to
the end of the business day before it. A backfill or a cleared task for a
past date therefore recomputes that night as it was.

Run bookkeeping: each attempt passes a new run_id. The job closes its
pipeline_runs row itself when it succeeds; when the task fails (the job
failed or was cancelled: the operator waits for it), close_failed_run
closes the row as failed if it is still running and deletes the job's staged
files <staging>/<run_id>/ (deploy/RUNBOOK.md "Run bookkeeping").

Alerts: the launcher returns before the job ends, so the job evaluates no
alerts; once the nightly task has succeeded (the job ended JOB_STATE_DONE),
the alerts task runs `yibao alerts evaluate` for that attempt's run_id in the
Cloud Run job yibao-alerts, which has the channels' secrets (deploy/RUNBOOK.md
"Alerts after the job"). A failed alerts task leaves the run succeeded (its
figures are published): clear only that task to evaluate again.

Worker size (pipelines/sizing.py): the machine type, its disk and the compute
step's memory limit (60 % of the machine's memory) go together;
tests/test_deploy_production.py checks them against each other.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from airflow import DAG
from airflow.providers.google.cloud.operators.cloud_run import CloudRunExecuteJobOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator
from airflow.timetables.trigger import CronTriggerTimetable

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")

# The same statement as the failure branch of deploy/schedule/nightly-workflow.yaml.
CLOSE_RUN_SQL = ("UPDATE `{dataset}.pipeline_runs` SET status = 'failed', "
                 "finished_at = CURRENT_TIMESTAMP(), error = @error "
                 "WHERE run_id = @run_id AND status = 'running'")


def nightly_as_of(logical_date: dt.datetime) -> str:
    """The last instant of the business day before ``logical_date``."""
    day = logical_date.astimezone(BUSINESS_TZ).date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.max, BUSINESS_TZ).isoformat(timespec="milliseconds")


def close_failed_run(context) -> None:
    """on_failure_callback / on_retry_callback of the nightly task: close the
    attempt's pipeline_runs row as failed (unless the job closed it) and delete
    its staged files. The parameters are the attempt's rendered ones."""
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    params = context["task"].body["launchParameter"]["parameters"]
    project, dataset = params["warehouse"].removeprefix("bigquery://").split("/", 1)
    exc = context.get("exception")
    error = f"Dataflow task failed ({type(exc).__name__}: {exc}); closed by the Airflow DAG"[:1000]
    BigQueryHook(use_legacy_sql=False).insert_job(project_id=project, configuration={"query": {
        "query": CLOSE_RUN_SQL.format(dataset=dataset), "useLegacySql": False,
        "parameterMode": "NAMED", "queryParameters": [
            {"name": "run_id", "parameterType": {"type": "STRING"},
             "parameterValue": {"value": params["run_id"]}},
            {"name": "error", "parameterType": {"type": "STRING"},
             "parameterValue": {"value": error}}]}})
    bucket, _, path = params["staging"].removeprefix("gs://").partition("/")
    gcs = GCSHook()
    for name in gcs.list(bucket, prefix=f"{path.rstrip('/')}/{params['run_id']}/"):
        gcs.delete(bucket, name)


def share_run_id(context) -> None:
    """on_execute_callback of the nightly task: publish the attempt's rendered
    run_id (XCom "run_id") for the alerts task. Each try clears the task's
    XComs first, so after a retry the alerts task reads the try that succeeded."""
    params = context["task"].body["launchParameter"]["parameters"]
    context["ti"].xcom_push(key="run_id", value=params["run_id"])


with DAG(
    dag_id="yibao_nightly",
    description="医保 indicators: nightly Dataflow refresh into BigQuery",
    schedule=CronTriggerTimetable("30 0 * * *", timezone="Asia/Shanghai"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=BUSINESS_TZ),
    catchup=False,
    max_active_runs=1,  # runs of one warehouse never overlap
    user_defined_macros={"nightly_as_of": nightly_as_of},
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=20)},
    tags=["yibao"],
) as dag:
    nightly = DataflowStartFlexTemplateOperator(
        task_id="nightly",
        project_id="{{ var.value.yibao_project }}",
        location="{{ var.value.yibao_region }}",
        body={
            "launchParameter": {
                "jobName": "yibao-nightly-{{ logical_date.strftime('%Y%m%d') }}",
                "containerSpecGcsPath": "{{ var.value.yibao_template }}",
                "parameters": {
                    "input": "{{ var.value.yibao_input }}",
                    "warehouse": "{{ var.value.yibao_warehouse }}",
                    "as_of": "{{ nightly_as_of(logical_date) }}",
                    "staging": "{{ var.value.yibao_work }}/staging",
                    "quarantine": "{{ var.value.yibao_work }}/quarantine",
                    "run_id": "{{ macros.uuid.uuid4() }}",
                    "compute_memory_limit": "39321MB",
                    "config": "{{ var.value.yibao_config }}",  # the alerts task's too
                },
                "environment": {
                    "machineType": "n2-highmem-8",
                    "diskSizeGb": 130,
                    "sdkContainerImage": "{{ var.value.yibao_image }}",
                    "serviceAccountEmail": "{{ var.value.yibao_worker_sa }}",
                    "tempLocation": "{{ var.value.yibao_work }}/tmp",
                    "stagingLocation": "{{ var.value.yibao_work }}/dataflow-staging",
                },
            }
        },
        wait_until_finished=True,  # a failed job fails the task (and alerts Airflow's way)
        deferrable=False,  # a resumed task renders its templates again: a second run_id
        on_execute_callback=share_run_id,
        on_failure_callback=close_failed_run,
        on_retry_callback=close_failed_run,
    )
    # The default trigger rule (all_success): only after the job ended JOB_STATE_DONE.
    # No close_failed_run here: a failed evaluation fails this task, not the run.
    alerts = CloudRunExecuteJobOperator(
        task_id="alerts",
        project_id="{{ var.value.yibao_project }}",
        region="{{ var.value.yibao_region }}",
        job_name="yibao-alerts",
        overrides={"container_overrides": [{"args": [
            "alerts", "evaluate",
            "--warehouse", "{{ var.value.yibao_warehouse }}",
            "--run-id", "{{ ti.xcom_pull(task_ids='nightly', key='run_id') }}",
            "--config", "{{ var.value.yibao_config }}",
        ]}]},
    )
    nightly >> alerts
