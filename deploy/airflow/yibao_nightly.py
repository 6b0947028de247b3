"""Airflow (Cloud Composer) DAG: the nightly refresh as a Dataflow Flex Template job.

The alternative to deploy/schedule/ (Cloud Scheduler + Workflows): use one,
not both. Copy this file into the environment's dags/ folder and set the
Airflow Variables below (deploy/RUNBOOK.md "Schedule").

as_of comes from the logical date: with CronTriggerTimetable the logical
date is the trigger time (00:30 Asia/Shanghai), and the run computes up to
the end of the business day before it. A backfill or a cleared task for a
past date therefore recomputes that night as it was.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from airflow import DAG
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator
from airflow.timetables.trigger import CronTriggerTimetable

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def nightly_as_of(logical_date: dt.datetime) -> str:
    """The last instant of the business day before ``logical_date``."""
    day = logical_date.astimezone(BUSINESS_TZ).date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.max, BUSINESS_TZ).isoformat(timespec="milliseconds")


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
    DataflowStartFlexTemplateOperator(
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
                },
                "environment": {
                    "sdkContainerImage": "{{ var.value.yibao_image }}",
                    "serviceAccountEmail": "{{ var.value.yibao_worker_sa }}",
                    "tempLocation": "{{ var.value.yibao_work }}/tmp",
                    "stagingLocation": "{{ var.value.yibao_work }}/dataflow-staging",
                },
            }
        },
        wait_until_finished=True,  # a failed job fails the task (and alerts Airflow's way)
    )
