"""deploy/: the Flex Template, its metadata, the schedules, the DDL and the
runbook agree with the code they deploy, checked offline."""
from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from zoneinfo import ZoneInfo

import apache_beam as beam
import duckdb
import jsonschema
import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions
from google.cloud.dataflow_v1beta3.types import templates
from google.protobuf import json_format

from pipelines import nightly
from pipelines.options import NightlyOptions
from tests.builders import copy_reference, settlement, utc, write_avro
from transforms.context import month_range
from transforms.timeutil import parse_instant

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
METADATA = json.loads((DEPLOY / "metadata.json").read_text(encoding="utf-8"))
PARAMS = {p["name"]: p for p in METADATA["parameters"]}
RUNBOOK = (DEPLOY / "RUNBOOK.md").read_text(encoding="utf-8")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nightly_options() -> dict[str, bool]:
    """NightlyOptions' parameters (argparse dest) -> takes a value."""
    import argparse

    parser = argparse.ArgumentParser()
    NightlyOptions._add_argparse_args(parser)
    return {a.dest: a.nargs != 0 for a in parser._actions if a.dest != "help"}


# --- metadata.json --------------------------------------------------------------

# The Flex Template metadata format, from Google's documented fields
# (TemplateMetadata, ParameterMetadata, ParameterType of the Dataflow API,
# https://cloud.google.com/dataflow/docs/reference/rest/v1b3/projects.locations.flexTemplates).
PARAM_TYPES = [
    "DEFAULT", "TEXT", "GCS_READ_BUCKET", "GCS_WRITE_BUCKET", "GCS_READ_FILE", "GCS_WRITE_FILE",
    "GCS_READ_FOLDER", "GCS_WRITE_FOLDER", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION", "BIGQUERY_TABLE",
    "JAVASCRIPT_UDF_FILE", "SERVICE_ACCOUNT", "MACHINE_TYPE", "KMS_KEY_NAME", "WORKER_REGION",
    "WORKER_ZONE", "BOOLEAN", "ENUM", "NUMBER", "KAFKA_TOPIC", "KAFKA_READ_TOPIC",
    "KAFKA_WRITE_TOPIC",
]
METADATA_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "parameters"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameter"}},
        "streaming": {"type": "boolean"},
        "supportsAtLeastOnce": {"type": "boolean"},
        "supportsExactlyOnce": {"type": "boolean"},
        "defaultStreamingMode": {"type": "string"},
    },
    "$defs": {
        "parameter": {
            "type": "object",
            "required": ["name", "label", "helpText"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z][a-zA-Z0-9_]*$"},
                "label": {"type": "string", "minLength": 1},
                "helpText": {"type": "string", "minLength": 1},
                "isOptional": {"type": "boolean"},
                "regexes": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "paramType": {"enum": PARAM_TYPES},
                "customMetadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "groupName": {"type": "string"},
                "parentName": {"type": "string"},
                "parentTriggerValues": {"type": "array", "items": {"type": "string"}},
                "enumOptions": {"type": "array", "items": {
                    "type": "object", "required": ["value"], "additionalProperties": False,
                    "properties": {"value": {"type": "string"}, "label": {"type": "string"},
                                   "description": {"type": "string"}}}},
                "defaultValue": {"type": "string"},
                "hiddenUi": {"type": "boolean"},
            },
        }
    },
}


def test_metadata_schema_is_the_dataflow_api_format():
    # The hand-written schema names exactly the API's fields and types.
    def fields(message):
        return {f.json_name for f in message.pb().DESCRIPTOR.fields}

    assert set(METADATA_SCHEMA["properties"]) == fields(templates.TemplateMetadata)
    assert set(METADATA_SCHEMA["$defs"]["parameter"]["properties"]) == fields(
        templates.ParameterMetadata)
    assert PARAM_TYPES == [t.name for t in templates.ParameterType]


def test_metadata_is_valid_flex_template_metadata():
    jsonschema.validate(METADATA, METADATA_SCHEMA)
    json_format.ParseDict(METADATA, templates.TemplateMetadata.pb()())  # strict: unknown fields fail
    assert METADATA["streaming"] is False
    for p in METADATA["parameters"]:
        assert p["regexes"], p["name"]
        for rx in p["regexes"]:
            re.compile(rx)


def test_metadata_describes_every_nightly_option_and_nothing_else():
    options = nightly_options()
    assert list(PARAMS) == list(options)  # same names, same order as the parser
    for name, takes_value in options.items():
        assert (PARAMS[name]["paramType"] == "BOOLEAN") == (not takes_value), name
    required = {n for n, p in PARAMS.items() if not p.get("isOptional", False)}
    assert required == {"input", "warehouse", "staging", "quarantine"}


def check_value(name: str, value: str) -> None:
    """``value`` of template parameter ``name`` passes its regexes and the pipeline."""
    for rx in PARAMS[name]["regexes"]:
        assert re.fullmatch(rx, value), f"{name}={value!r} fails {rx}"
    if name == "as_of":
        assert parse_instant(value).tzinfo is not None
    elif name == "months":
        assert month_range(value)
    elif name == "compute_memory_limit":
        duckdb.connect().execute(f"SET memory_limit = '{value}'")
    elif name == "warehouse":
        from warehouse.bigquery_store import parse_uri

        parse_uri(value)


def test_help_text_examples_pass_the_regexes():
    for name, p in PARAMS.items():
        m = re.search(r"Example: (\S+)$", p["helpText"])
        if m:
            check_value(name, m[1])
    for bad in ("2023-13", "2023-1", "202311"):
        assert not re.fullmatch(PARAMS["months"]["regexes"][0], bad)
    for bad in ("duckdb:///var/w.duckdb", "bigquery://p", "bigquery://Proj/ds"):
        assert not re.fullmatch(PARAMS["warehouse"]["regexes"][0], bad)
    assert not re.fullmatch(PARAMS["as_of"]["regexes"][0], "yesterday")


# --- deploy/main.py: the launcher's arguments -----------------------------------


def test_flex_main_hands_launcher_arguments_to_nightly(monkeypatch):
    main = _load(DEPLOY / "main.py")
    assert main.flex_argv(["--input=gs://b/in", "--no_alerts=true", "--months=2023-11"]) == [
        "--input=gs://b/in", "--no_alerts", "--months=2023-11"]
    assert main.flex_argv(["--no_alerts=false", "--runner=DataflowRunner"]) == [
        "--runner=DataflowRunner"]
    with pytest.raises(SystemExit):
        main.flex_argv(["--no_alerts=yes"])
    seen = []
    monkeypatch.setattr(nightly, "run", lambda argv: seen.append(argv) or "run-id")
    assert main.main(["--input=gs://b/in", "--no_alerts=True"]) == "run-id"
    assert seen == [["--input=gs://b/in", "--no_alerts"]]
    # What the launcher passes for every parameter parses (booleans included).
    example = {"NUMBER": "1"}  # a value of the parameter's type
    argv = main.flex_argv([f"--{n}={p.get('defaultValue') or example.get(p['paramType'], 'x')}"
                           for n, p in PARAMS.items()])
    opts = PipelineOptions(argv).view_as(NightlyOptions)
    assert opts.input == "x" and opts.no_alerts is False


# --- RUNBOOK.md: its commands are the ones the code accepts -----------------------


def runbook_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in re.findall(r"^export (\w+)=(\S+)", RUNBOOK, re.M):
        env[name] = expand(value, env)
    return env


def expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], m[0]), text)


def runbook_commands(prefixes: tuple[str, ...]) -> list[list[str]]:
    env, out = runbook_env(), []
    for block in re.findall(r"```sh\n(.*?)```", RUNBOOK, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith(prefixes):
                out.append([expand(w, env) for w in shlex.split(line)])
    return out


def test_runbook_pipeline_commands_parse(caplog):
    commands = runbook_commands(("yibao nightly", "python -m pipelines.nightly"))
    assert commands
    for words in commands:
        args = words[2:] if words[0] == "yibao" else words[3:]
        with caplog.at_level(logging.WARNING, logger="apache_beam"):
            options = PipelineOptions(args)
            options.get_all_options(retain_unknown_options=False)
        assert not caplog.records, [r.getMessage() for r in caplog.records]
        opts = options.view_as(NightlyOptions)
        assert opts.input and opts.warehouse
        for name in PARAMS:
            if getattr(opts, name) not in (None, False) and name != "no_alerts":
                check_value(name, getattr(opts, name))


def test_runbook_template_runs_pass_metadata_validation(caplog):
    runs = runbook_commands(("gcloud dataflow flex-template run",))
    assert len(runs) >= 3  # smoke, backfill, re-run
    required = {n for n, p in PARAMS.items() if not p.get("isOptional", False)}
    for words in runs:
        given: dict[str, str] = {}
        for w in words:
            if w.startswith("--parameters="):
                given.update(kv.split("=", 1) for kv in w.removeprefix("--parameters=").split(","))
        assert required <= set(given), words[4]
        for name, value in given.items():
            if name in PARAMS:
                check_value(name, value)
            else:  # not the template's: must be a Beam pipeline option
                with caplog.at_level(logging.WARNING, logger="apache_beam"):
                    PipelineOptions([f"--{name}={value}"]).get_all_options(
                        retain_unknown_options=False)
                assert not caplog.records, name


# --- schedules --------------------------------------------------------------------


def test_workflow_launches_the_template_with_as_of():
    wf = yaml.safe_load((DEPLOY / "schedule" / "nightly-workflow.yaml").read_text())
    steps = {k: v for step in wf["main"]["steps"] for k, v in step.items()}
    launch = steps["launch"]["args"]
    assert launch["url"].endswith('"/flexTemplates:launch"}')
    assert launch["auth"] == {"type": "OAuth2"}
    param = launch["body"]["launchParameter"]
    json_format.ParseDict(param, templates.LaunchFlexTemplateParameter.pb()())  # field names
    names = set(param["parameters"])
    assert {n for n, p in PARAMS.items() if not p.get("isOptional", False)} <= names <= set(PARAMS)
    assert param["parameters"]["as_of"] == "${as_of}"
    as_of = next(a["as_of"] for a in steps["init"]["assign"] if "as_of" in a)
    suffix = re.search(r'yesterday \+ "([^"]+)"', as_of)[1]
    check_value("as_of", "2024-01-14" + suffix)
    # Every variable the workflow reads is set by the runbook's deploy command.
    text = (DEPLOY / "schedule" / "nightly-workflow.yaml").read_text()
    deploy = next(w for w in runbook_commands(("gcloud workflows deploy",))[0]
                  if w.startswith("--set-env-vars="))
    given = {kv.split("=", 1)[0] for kv in deploy.removeprefix("--set-env-vars=").split(",")}
    assert set(re.findall(r'sys.get_env\("(\w+)"\)', text)) - {"GOOGLE_CLOUD_PROJECT_ID"} == given


def test_scheduler_job_starts_the_workflow_nightly():
    env = runbook_env()
    flags = yaml.safe_load(expand((DEPLOY / "schedule" / "scheduler-job.yaml").read_text(), env))
    assert all(k.startswith("--") for k in flags)
    assert flags["--schedule"] == "30 0 * * *" and flags["--time-zone"] == "Asia/Shanghai"
    assert flags["--uri"] == (f"https://workflowexecutions.googleapis.com/v1/projects/{env['PROJECT']}"
                              f"/locations/{env['REGION']}/workflows/yibao-nightly/executions")
    assert json.loads(flags["--message-body"]) == {"argument": "{}"}
    assert flags["--oauth-service-account-email"] == env["SCHEDULER_SA"]


def test_airflow_dag_structure():
    """Checked without Airflow: apache-airflow + its Google provider are ~150
    packages and pin fastapi to a version bqemulator excludes, so the test
    reads the DAG file's syntax tree instead: it imports the Dataflow Flex
    Template operator, builds a scheduled DAG, passes exactly template
    parameters (required ones included), and its as_of macro (run here) gives
    the end of the previous business day."""
    path = DEPLOY / "airflow" / "yibao_nightly.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names}
    assert ("airflow.providers.google.cloud.operators.dataflow",
            "DataflowStartFlexTemplateOperator") in imports
    calls = {n.func.id: n for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    dag = {k.arg: k.value for k in calls["DAG"].keywords}
    assert "schedule" in dag and ast.unparse(dag["schedule"]).startswith("CronTriggerTimetable(")
    assert "Asia/Shanghai" in ast.unparse(dag["schedule"])
    op = {k.arg: k.value for k in calls["DataflowStartFlexTemplateOperator"].keywords}
    body = ast.literal_eval(op["body"])
    param = body["launchParameter"]
    json_format.ParseDict(param, templates.LaunchFlexTemplateParameter.pb()())
    names = set(param["parameters"])
    assert {n for n, p in PARAMS.items() if not p.get("isOptional", False)} <= names <= set(PARAMS)
    assert param["parameters"]["as_of"] == "{{ nightly_as_of(logical_date) }}"
    assert ast.unparse(dag["user_defined_macros"]) == "{'nightly_as_of': nightly_as_of}"
    variables = set(re.findall(r"var\.value\.(\w+)", path.read_text()))
    assert variables == set(re.findall(r"`(yibao_\w+)`", RUNBOOK))  # the runbook lists them

    # The macro itself, run on the trigger times (the logical dates) of some nights.
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "nightly_as_of")
    ns = {"dt": dt, "ZoneInfo": ZoneInfo}  # the DAG file's stdlib imports
    keep = [n for n in tree.body if isinstance(n, ast.Assign) or n is fn]
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), ns)
    shanghai = ns["BUSINESS_TZ"]
    for trigger, want in (
        (dt.datetime(2024, 1, 15, 0, 30, tzinfo=shanghai), "2024-01-14T23:59:59.999+08:00"),
        (dt.datetime(2023, 12, 31, 16, 30, tzinfo=dt.UTC), "2023-12-31T23:59:59.999+08:00"),
    ):
        got = ns["nightly_as_of"](trigger)
        assert got == want
        check_value("as_of", got)


# --- image, DDL, package -----------------------------------------------------------


def test_dockerfile_builds_the_template_image():
    text = (DEPLOY / "Dockerfile").read_text()
    assert f"ARG BEAM_IMAGE=apache/beam_python3.11_sdk:{beam.__version__}\n" in text
    assert sys.version_info[:2] == (3, 11)
    env = dict(re.findall(r"^ENV (\w+)=(\S*)$", text, re.M))
    workdir = re.search(r"^ARG WORKDIR=(\S+)$", text, re.M)[1]
    for var, local in (("FLEX_TEMPLATE_PYTHON_PY_FILE", "deploy/main.py"),
                       ("FLEX_TEMPLATE_PYTHON_SETUP_FILE", "setup.py")):
        assert env[var] == "${WORKDIR}/" + local and (ROOT / local).is_file()
    assert "/opt/google/dataflow/python_template_launcher" in text
    # Every package of setup.py is copied in, and every copied path exists.
    setup = ast.parse((ROOT / "setup.py").read_text())
    include = next(k.value for n in ast.walk(setup) if isinstance(n, ast.Call)
                   for k in n.keywords if k.arg == "include")
    packages = {p.rstrip("*") for p in ast.literal_eval(include)}
    copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")
              and "--from" not in line]
    copied = {src for srcs in copies for src in srcs}
    assert packages <= copied
    assert all((ROOT / src).exists() for src in copied)
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)[1]
    boot = ROOT / entry.removeprefix(workdir + "/")
    assert boot.stat().st_mode & 0o111 and "exec /opt/apache/beam/boot \"$@\"" in boot.read_text()
    subprocess.run(["sh", "-n", str(boot)], check=True)


def test_committed_ddl_is_the_generated_ddl():
    gen = _load(DEPLOY / "bigquery_ddl.py")
    want = gen.render()
    have = {p.name: p.read_text(encoding="utf-8") for p in (DEPLOY / "bigquery").glob("*.sql")}
    assert have == want, "run: python deploy/bigquery_ddl.py"
    assert "PARTITION BY DATE_TRUNC(period_start, MONTH)\nCLUSTER BY indicator_code, region_code" in (
        have["01_indicator_values.sql"])


def test_sdist_ships_the_package_data(tmp_path):
    """Dataflow stages the package with ``python setup.py sdist`` (--setup_file)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", "var", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"))
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                   cwd=src, check=True, capture_output=True)
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = [*ROOT.glob("schemas/*.avsc"), *ROOT.glob("reference/*/*.csv"),
              *ROOT.glob("expectations/suites/*.json"), ROOT / "pipelines" / "defaults.yaml"]
    assert len(wanted) > 10
    missing = {str(p.relative_to(ROOT)) for p in wanted} - names
    assert not missing


# --- the Dataflow job graph, built offline --------------------------------------------


def test_dataflow_job_graph_builds_offline(tmp_path):
    """``--dry_run`` builds the whole Dataflow job without network and returns it
    on the result (Beam returns before it would write --dataflow_job_file, so
    the test writes the job and its graph there). GCS names must look valid
    (three characters or more) or Beam looks for a default bucket online."""
    root = tmp_path / "landing"
    copy_reference(root)
    write_avro(root / "settlement" / "a.avro", "settlement", [settlement("s1", utc(2023, 3, 1, 2))])
    job_file = tmp_path / "job.json"
    options = PipelineOptions([
        "--runner", "DataflowRunner", "--dry_run=True", "--no_auth", "--sdk_location=container",
        "--project", "yibao-test", "--region", "asia-east2",
        "--temp_location", "gs://yibao-test/tmp", "--staging_location", "gs://yibao-test/staging",
        "--dataflow_job_file", str(job_file),
        "--input", str(root), "--warehouse", "bigquery://yibao-test/yibao",
        "--as-of", "2023-03-31T23:59:59+08:00",
        "--staging", "gs://yibao-test/work", "--quarantine", "gs://yibao-test/quarantine"])
    opts = options.view_as(NightlyOptions)
    p = beam.Pipeline(options=options)
    nightly.build(p, opts.input, nightly.make_context(opts), opts.warehouse, "run-1",
                  opts.quarantine, opts.staging + "/run-1", opts.compute_memory_limit)
    result = p.run()
    job = result.job
    assert job is not None and job.proto.name
    graph = json_format.MessageToDict(job.proto_pipeline)
    job_file.write_text(json.dumps({"job": json.loads(job.json()), "pipeline": graph}))

    written = json.loads(job_file.read_text())
    steps = {t["uniqueName"] for t in written["pipeline"]["components"]["transforms"].values()}
    labels = [s.title().replace("_", "") for s in ("enrolment", "contribution", "settlement",
                                                    "settlement_list", "filing")]
    for step in ("ComputeShards", "SumParts", "Finalize", "AllDeadLetters", "Publish",
                 *(f"Read{x}" for x in labels), *(f"Route{x}" for x in labels)):
        assert step in steps
    envs = written["pipeline"]["components"]["environments"].values()
    assert any(e["urn"] == "beam:env:docker:v1" for e in envs)  # workers run a container
