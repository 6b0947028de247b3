"""Issue 16 (leftover): "the launcher returns before the job ends", so the job
evaluates no alerts on Dataflow, and `yibao nightly` cannot do it after a
blocking run. Both schedules run `yibao alerts evaluate --warehouse W --run-id
R --config C` in the Cloud Run job yibao-alerts once the job is
JOB_STATE_DONE, with the run id, warehouse and config they gave the job; a
failed evaluation is visible but leaves the run succeeded.

Checked offline like tests/test_deploy.py: the Workflows definition as YAML
(its step graph walked here), the DAG as a syntax tree (Airflow is not
installed), both requests against the Cloud Run v2 API's own messages, and
the command each schedule runs, rendered, through the real `yibao` CLI on a
real DuckDB warehouse."""
from __future__ import annotations

import ast
import datetime as dt
import logging
import re
import uuid
from types import SimpleNamespace

import jinja2
import yaml
from google.cloud import run_v2
from google.protobuf import json_format

from alerting.config import alert_config
from pipelines.cli import main as yibao
from tests.test_alerting import T0, add_run, dq_rows, make_warehouse, rule_row
from tests.test_deploy import RUNBOOK, check_value, runbook_commands, runbook_env
from tests.test_deploy_production import DAG_PATH, STEPS, WORKFLOW

JOB = "yibao-alerts"
ARGS = ["alerts", "evaluate", "--warehouse", "--run-id", "--config"]  # the flags, in order


def flag_values(args: list[str]) -> dict[str, str]:
    """``alerts evaluate --a x --b y`` -> {"--a": "x", "--b": "y"}."""
    assert args[:2] == ["alerts", "evaluate"]
    assert len(args) % 2 == 0 and [*args[:2], *args[2::2]] == ARGS, args
    return dict(zip(args[2::2], args[3::2], strict=True))


# --- Workflows ------------------------------------------------------------------------

END = "end"


def successors(name: str) -> set[str]:
    """The steps control can go to from top-level step ``name`` (Workflows
    semantics: ``next``, a switch's branches and its fall-through, ``return``
    and ``raise`` end; otherwise the following step)."""
    order = [k for step in WORKFLOW["main"]["steps"] for k in step]
    step = STEPS[name]
    following = order[order.index(name) + 1] if order.index(name) + 1 < len(order) else END
    if "return" in step or "raise" in step:
        return {END}
    if "next" in step:
        return {step["next"]}
    if "switch" in step:
        out = {c.get("next", END) if "next" in c else END for c in step["switch"]}
        return out | {following}  # no condition true: the following step
    return {following}


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in successors(todo.pop()) - seen - {END}:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_workflow_evaluates_alerts_only_after_the_job_succeeded():
    done = '${job.currentState == "JOB_STATE_DONE"}'
    branches = {c["condition"]: c for c in STEPS["job_ended"]["switch"]}
    assert branches[done]["next"] == "evaluate_alerts"
    # The only way into the evaluation is that branch: not from a failed or cancelled
    # job's path, not by falling through the wait loop.
    into = {n for n in STEPS if "evaluate_alerts" in successors(n)}
    assert into == {"job_ended"}
    assert all(c.get("next") != "evaluate_alerts" for k, c in branches.items() if k != done)
    assert "evaluate_alerts" not in reachable("close_run")
    # After it (whatever it did) the execution returns the job: it never closes the run.
    assert reachable("evaluate_alerts") == {"done"} and STEPS["done"] == {"return": "${job.id}"}


def test_workflow_alert_step_runs_the_cloud_run_job_with_the_runs_arguments():
    step = STEPS["evaluate_alerts"]["try"]
    assert step["call"] == "googleapis.run.v2.projects.locations.jobs.run"  # waits for the execution
    init = {k: v for a in STEPS["init"]["assign"] for k, v in a.items()}
    # A Workflows expression of string literals, variables and `+`: Python reads it the same way.
    name = eval(step["args"]["name"][2:-1], {"__builtins__": {}},  # noqa: S307
                {"project": "yibao-prod", "region": "asia-east2"})
    assert name == f"projects/yibao-prod/locations/asia-east2/jobs/{JOB}"
    assert init["region"] == '${sys.get_env("DATAFLOW_REGION")}'  # the job lives beside Dataflow
    body = step["args"]["body"]
    json_format.ParseDict(body, run_v2.RunJobRequest.pb()())  # the API's field names, strictly
    (override,) = body["overrides"]["containerOverrides"]
    flags = flag_values(override["args"])
    launch = STEPS["launch"]["args"]["body"]["launchParameter"]["parameters"]
    # The same expressions the job was launched with: the same run id, warehouse and config.
    assert flags == {"--warehouse": launch["warehouse"], "--run-id": launch["run_id"],
                     "--config": launch["config"]}
    assert flags == {"--warehouse": "${warehouse}", "--run-id": "${run_id}", "--config": "${config}"}
    assert init["warehouse"] == '${sys.get_env("WAREHOUSE")}'
    assert init["config"] == '${sys.get_env("CONFIG")}'


def test_workflow_alert_failure_is_logged_and_does_not_fail_the_run():
    handler = STEPS["evaluate_alerts"]["except"]
    assert handler["as"] == "e"
    steps = {k: v for s in handler["steps"] for k, v in s.items()}
    text = yaml.safe_dump(handler)
    assert "raise" not in text and "close_run" not in text and "failed" not in {
        s.get("next") for s in steps.values()}
    (log,) = steps.values()
    assert log["call"] == "sys.log" and log["args"]["severity"] == "ERROR"
    entry = log["args"]["json"]
    assert entry["run_id"] == "${run_id}" and entry["error"] == "${e}"
    assert "alert evaluation of run" in entry["message"] and "Alerts after the job" in entry["message"]
    assert "Alerts after the job" in RUNBOOK


# --- Airflow ------------------------------------------------------------------------------


def dag_tree() -> ast.Module:
    return ast.parse(DAG_PATH.read_text(encoding="utf-8"))


def operator(tree: ast.Module, cls: str) -> tuple[str, dict[str, ast.expr]]:
    """(the variable the ``cls(...)`` call is bound to, its keyword arguments)."""
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
               and getattr(n.value.func, "id", None) == cls]
    (target,) = node.targets
    return target.id, {k.arg: k.value for k in node.value.keywords}


def test_dag_runs_the_alerts_task_after_the_nightly_task_succeeded():
    tree = dag_tree()
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names}
    assert ("airflow.providers.google.cloud.operators.cloud_run", "CloudRunExecuteJobOperator") in imports
    nightly, nightly_kw = operator(tree, "DataflowStartFlexTemplateOperator")
    alerts, kw = operator(tree, "CloudRunExecuteJobOperator")
    edges = {(n.left.id, n.right.id) for n in ast.walk(tree)
             if isinstance(n, ast.BinOp) and isinstance(n.op, ast.RShift)}
    assert edges == {(nightly, alerts)}
    # Default trigger rule all_success, here and in default_args: a failed or
    # cancelled job (a failed nightly task) never reaches the alerts.
    dag = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DAG")
    default_args = next(k.value for k in dag.keywords if k.arg == "default_args")
    defaults = {ast.literal_eval(k) for k in default_args.keys}
    assert "trigger_rule" not in DAG_PATH.read_text()  # not in default_args, not on a task
    # A failed evaluation fails the alerts task only: it does not close the run as failed.
    assert not {"on_failure_callback", "on_retry_callback"} & (set(kw) | defaults)
    assert ast.unparse(kw["job_name"]) == repr(JOB)
    assert ast.unparse(kw["project_id"]) == ast.unparse(nightly_kw["project_id"])
    assert ast.unparse(kw["region"]) == ast.unparse(nightly_kw["location"])
    # The nightly task publishes its run id before it runs; never deferred, so rendered once.
    assert ast.unparse(nightly_kw["on_execute_callback"]) == "share_run_id"
    assert ast.unparse(nightly_kw["deferrable"]) == "False"


def render(value, context: dict):
    """Airflow renders every string of a templated field with Jinja."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(value).render(context) \
        if isinstance(value, str) else value


class TaskInstance:
    """The two XCom calls of Airflow's task instance the DAG uses (Airflow is not installed)."""

    def __init__(self, task_id: str, store: dict):
        self.task_id, self.store = task_id, store

    def xcom_push(self, key: str, value) -> None:
        self.store[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str):
        return self.store[(task_ids, key)]


def airflow_alert_args(variables: dict[str, str]) -> tuple[dict, list[str]]:
    """(the nightly task's rendered launch parameters, the alerts task's rendered
    arguments) for one attempt, with the DAG's own share_run_id run in between."""
    tree = dag_tree()
    _, nightly_kw = operator(tree, "DataflowStartFlexTemplateOperator")
    _, kw = operator(tree, "CloudRunExecuteJobOperator")
    ns: dict = {}
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "share_run_id")
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(DAG_PATH), "exec"), ns)
    xcoms: dict = {}
    base = {"var": {"value": variables}, "macros": SimpleNamespace(uuid=uuid),
            "nightly_as_of": lambda _: "2024-01-14T23:59:59.999+08:00", "logical_date": T0}
    body = render(ast.literal_eval(nightly_kw["body"]), {**base, "ti": TaskInstance("nightly", xcoms)})
    ns["share_run_id"]({"task": SimpleNamespace(body=body), "ti": TaskInstance("nightly", xcoms)})
    overrides = render(ast.literal_eval(kw["overrides"]), {**base, "ti": TaskInstance("alerts", xcoms)})
    run_v2.RunJobRequest(name=f"projects/p/locations/r/jobs/{JOB}", overrides=overrides)  # field names
    (override,) = overrides["container_overrides"]
    return body["launchParameter"]["parameters"], override["args"]


def test_dag_alerts_task_passes_the_attempts_run_id_warehouse_and_config():
    variables = {"yibao_warehouse": "bigquery://yibao-prod/yibao",
                 "yibao_config": "gs://yibao-prod-dataflow/config/yibao.yaml"}
    variables |= {v: f"<{v}>" for v in re.findall(r"var\.value\.(\w+)", DAG_PATH.read_text())
                  if v not in variables}
    params, args = airflow_alert_args(variables)
    flags = flag_values(args)
    assert flags == {"--warehouse": params["warehouse"], "--run-id": params["run_id"],
                     "--config": params["config"]}
    assert flags["--warehouse"] == "bigquery://yibao-prod/yibao"
    assert uuid.UUID(flags["--run-id"])  # the attempt's fresh id, not a template
    check_value("config", params["config"])
    # Another attempt: another run id, and the alerts follow it.
    assert airflow_alert_args(variables)[1][5] != flags["--run-id"]


# --- the command itself, on a real warehouse ------------------------------------------


def test_the_schedules_command_evaluates_that_run_with_that_config(tmp_path, caplog):
    """The arguments each schedule renders, run by the real `yibao` CLI on a
    DuckDB warehouse: the run they name is evaluated (not the latest one), with
    their config (a 0.99 threshold the shipped 0.95 would not breach)."""
    wh = make_warehouse(str(tmp_path / "wh.duckdb"))
    config = tmp_path / "yibao.yaml"
    config.write_text("alerts:\n  pass_rate: {threshold: 0.99}\n  target_miss: {enabled: false}\n"
                      "  anomaly: {enabled: false}\n  silence: {enabled: false}\n"
                      "  dead_letters: {enabled: false}\n  calendar_missing: {enabled: false}\n",
                      encoding="utf-8")
    variables = {"yibao_warehouse": f"duckdb:///{wh}", "yibao_config": str(config)}
    variables |= {v: f"<{v}>" for v in re.findall(r"var\.value\.(\w+)", DAG_PATH.read_text())
                  if v not in variables}
    params, airflow_args = airflow_alert_args(variables)
    run_id = params["run_id"]
    add_run(wh, run_id, T0, quality_rule_results=[rule_row(checked=200, failed=4)])  # 98 %
    add_run(wh, "a-later-run", T0 + dt.timedelta(hours=1))  # the latest succeeded run is another
    (override,) = STEPS["evaluate_alerts"]["try"]["args"]["body"]["overrides"]["containerOverrides"]
    workflow_vars = {"warehouse": f"duckdb:///{wh}", "run_id": run_id, "config": str(config)}
    workflow_args = [re.sub(r"^\$\{(\w+)\}$", lambda m: workflow_vars[m[1]], a) for a in override["args"]]
    assert workflow_args == airflow_args

    for n, args in enumerate((airflow_args, workflow_args), 1):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="alerting"):
            assert yibao(args) == 0
        summaries = [r.getMessage() for r in caplog.records if r.name == "alerting"
                     and r.getMessage().startswith("alerts for run")]
        assert summaries and all(f"alerts for run {run_id}" in s for s in summaries), summaries
        rows = dq_rows(wh)
        # The second evaluation of the same run, within the quiet hours: debounced.
        assert [(r["kind"], r["subject"], r["region_code"], r["suppressed"]) for r in rows] == [
            ("pass_rate", "T04", "640104", False), ("pass_rate", "T04", "640104", True)][:n]
        assert rows[-1]["threshold"] == 0.99
        caplog.clear()


# --- RUNBOOK.md: the Cloud Run job the schedules execute ----------------------------------


def test_runbook_deploys_the_alerts_job_with_the_configs_secrets():
    env = runbook_env()
    check_value("config", env["CONFIG"])
    (deploy,) = runbook_commands(("gcloud run jobs deploy",))
    assert deploy[:4] == ["gcloud", "run", "jobs", "deploy"] and deploy[4] == JOB
    flags = dict(w.removeprefix("--").split("=", 1) for w in deploy[5:])
    assert flags["image"] == env["IMAGE"] and flags["region"] == env["REGION"]
    assert flags["command"] == "yibao" and flags["service-account"] == env["WORKER_SA"]
    # Its own arguments (a run by hand: the latest succeeded run) parse like the schedules'.
    assert flags["args"].split(",") == ["alerts", "evaluate", f"--warehouse=bigquery://{env['PROJECT']}/"
                                        f"{env['DATASET']}", f"--config={env['CONFIG']}"]
    # Every secret the example config names by variable is set on the job, and nothing else.
    (example,) = re.findall(r"```yaml\n(alerts:.*?)```", RUNBOOK, re.S)
    cfg = alert_config(yaml.safe_load(example))
    wanted = {v for spec in cfg.raw["channels"].values() for k, v in spec.items() if k.endswith("_env")}
    secrets = dict(kv.split("=", 1) for kv in flags["set-secrets"].split(","))
    assert wanted and set(secrets) == wanted
    assert all(re.fullmatch(r"[a-z][-a-z0-9]*:latest", s) for s in secrets.values())
    # The schedules' account may run it with their arguments.
    (grant,) = runbook_commands(("gcloud run jobs add-iam-policy-binding",))
    assert grant[4] == JOB and f"--member=serviceAccount:{env['SCHEDULER_SA']}" in grant
    assert "--role=roles/run.developer" in grant
    # Evaluating one run again by hand: the same command with the run id.
    (by_hand,) = runbook_commands(("gcloud run jobs execute",))
    args = next(w for w in by_hand if w.startswith("--args=")).removeprefix("--args=").split(",")
    assert args[:2] == ["alerts", "evaluate"] and "--run-id=RUN_ID" in args
