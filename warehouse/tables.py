"""The warehouse tables, defined once (WAREHOUSE.md).

Every table is a list of columns with a logical type; DuckDB DDL, BigQuery
DDL, BigQuery ``SchemaField`` lists and Arrow schemas are all generated from
``TABLES`` so the engines cannot drift apart (tests/test_warehouse.py checks
them column by column).

Logical type -> DuckDB / BigQuery / Arrow:

============== ================= =================== =======================
logical        DuckDB            BigQuery            Arrow
============== ================= =================== =======================
STRING         VARCHAR           STRING              string
DATE           DATE              DATE                date32
TIMESTAMP      TIMESTAMPTZ       TIMESTAMP           timestamp[us, UTC]
DECIMAL(38,6)  DECIMAL(38,6)     BIGNUMERIC(38, 6)   decimal128(38, 6)
FLOAT64        DOUBLE            FLOAT64             float64
INT64          BIGINT            INT64               int64
BOOL           BOOLEAN           BOOL                bool
JSON           JSON              JSON                string (JSON text)
============== ================= =================== =======================

TIMESTAMP is an instant (BigQuery TIMESTAMP is UTC), hence TIMESTAMPTZ in
DuckDB. DECIMAL(38,6) is BIGNUMERIC because 32 integer digits exceed
NUMERIC's 29; the parameters keep both engines rounding to 6 places.

``write`` says how a publish replaces rows (warehouse/duckdb_store.py):
``key`` = delete the rows whose key is in the new data, then insert;
``scope`` = delete the rows inside a caller-given scope, then insert;
``all`` = replace the whole table (dimensions).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

DECIMAL = "DECIMAL(38,6)"
LOGICAL_TYPES = ("STRING", "DATE", "TIMESTAMP", DECIMAL, "FLOAT64", "INT64", "BOOL", "JSON")

DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP WITH TIME ZONE",  # = TIMESTAMPTZ, as information_schema spells it
    DECIMAL: "DECIMAL(38,6)",
    "FLOAT64": "DOUBLE",
    "INT64": "BIGINT",
    "BOOL": "BOOLEAN",
    "JSON": "JSON",
}
# (SchemaField field_type, precision, scale); DDL text is derived from it.
BIGQUERY_TYPES = {
    "STRING": ("STRING", None, None),
    "DATE": ("DATE", None, None),
    "TIMESTAMP": ("TIMESTAMP", None, None),
    DECIMAL: ("BIGNUMERIC", 38, 6),
    "FLOAT64": ("FLOAT64", None, None),
    "INT64": ("INT64", None, None),
    "BOOL": ("BOOL", None, None),
    "JSON": ("JSON", None, None),
}
ARROW_TYPES = {
    "STRING": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    DECIMAL: pa.decimal128(38, 6),
    "FLOAT64": pa.float64(),
    "INT64": pa.int64(),
    "BOOL": pa.bool_(),
    # JSON travels as its text: both engines parse it on the way in.
    "JSON": pa.string(),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    description: str = ""

    def __post_init__(self):
        if self.type not in LOGICAL_TYPES:
            raise ValueError(f"{self.name}: unknown logical type {self.type!r}")


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    write: str = "key"  # key | scope | all (module docstring)
    partition_month: str | None = None  # BigQuery: PARTITION BY DATE_TRUNC(col, MONTH)
    cluster_by: tuple[str, ...] = ()

    def __post_init__(self):
        used = {*self.key, *self.cluster_by, *([self.partition_month] if self.partition_month else [])}
        unknown = used - set(self.column_names)
        if unknown:
            raise ValueError(f"{self.name}: unknown columns {sorted(unknown)}")
        if self.write not in ("key", "scope", "all"):
            raise ValueError(f"{self.name}: write must be key, scope or all")
        if self.write == "key" and not self.key:
            raise ValueError(f"{self.name}: write='key' needs a key")
        if any(self.column(k).nullable for k in self.key):
            raise ValueError(f"{self.name}: key columns must be NOT NULL")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def C(name: str, type_: str, description: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable, description)


def NN(name: str, type_: str, description: str) -> Column:
    return Column(name, type_, False, description)


_RUN_ID = NN("run_id", "STRING", "pipeline_runs.run_id (UUID) of the run that wrote the row")
_COMPUTED_AT = NN("computed_at", "TIMESTAMP", "when the run published the row")
_PERIOD = (
    NN("period_type", "STRING", "DAY | MONTH | YTD"),
    NN("period_start", "DATE", "first business date (Asia/Shanghai) of the period"),
    NN("period_end", "DATE", "last business date of the period, inclusive"),
)
_PERIOD_KEY = ("period_type", "period_start", "period_end")
#: Appended to the quality tables when the stream began writing them (issue
#: 20): a file from before gets it with BACKFILL's value (only nightly runs
#: wrote quality rows then).
_PIPELINE = NN("pipeline", "STRING", "nightly | stream: the pipeline that wrote the row")
#: NOT NULL columns a newer release appends, with the value the rows of an
#: older warehouse get (``appended_columns``; both stores' ``_add_new_columns``).
BACKFILL: dict[tuple[str, str], str] = {("quality_rule_results", "pipeline"): "nightly",
                                        ("quality_failures", "pipeline"): "nightly"}

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "indicator_values",
            "One indicator value per indicator, region, period and pipeline (INDICATORS.md).",
            (
                NN("indicator_code", "STRING", "dim_indicator.indicator_code, e.g. I08"),
                NN("region_code", "STRING", "dim_region.region_code"),
                NN("region_level", "STRING", "county | pooling | province"),
                *_PERIOD,
                C("numerator", DECIMAL, "additive numerator component (exact)"),
                C("denominator", DECIMAL, "additive denominator component (exact)"),
                C("value", "FLOAT64", "numerator / denominator; null when the denominator is 0"),
                C("target", "FLOAT64", "target on the scale of value (50% = 0.50)"),
                C("direction", "STRING", ">= or <="),
                C("meets_target", "BOOL", "value compared with target; null when value is null"),
                C("components", "JSON", "extra components, e.g. C01 cur_sum/cur_cnt/prev_sum/prev_cnt"),
                NN("as_of", "TIMESTAMP", "the run's cut-off instant"),
                NN("pipeline", "STRING", "nightly | stream"),
                _RUN_ID,
                _COMPUTED_AT,
                # Last: an older warehouse file gains it on its next run (a nullable
                # column appended is the one migration done silently).
                C("provisional", "BOOL",
                  "true while later events can still change the row at as_of: the period has"
                  " not ended, or a due window deciding the numerator is still open (I13: a"
                  " settlement whose 30 days have not passed; cases: an open case not yet due);"
                  " null in a row written before the column existed"),
            ),
            key=("indicator_code", "region_code", *_PERIOD_KEY, "pipeline"),
            partition_month="period_start",
            cluster_by=("indicator_code", "region_code"),
        ),
        Table(
            "quality_rule_results",
            "Per rule, region and period: records checked and failed (QUALITY_RULES.md Results).",
            (
                NN("rule_id", "STRING", "dim_quality_rule.rule_id, e.g. E01"),
                NN("stream", "STRING", "stream the rule checks"),
                NN("region_code", "STRING", "dim_region.region_code"),
                NN("region_level", "STRING", "county | pooling | province"),
                *_PERIOD,
                NN("checked", "INT64", "records of the rule's population"),
                NN("failed", "INT64", "records failing the rule"),
                C("pass_rate", "FLOAT64", "1 - failed / checked; null when checked is 0"),
                _RUN_ID,
                _COMPUTED_AT,
                _PIPELINE,
            ),
            key=("rule_id", "stream", "region_code", *_PERIOD_KEY, "pipeline"),
        ),
        Table(
            "quality_failures",
            "One row per record and failed rule; personal fields masked, psn_no pseudonymised.",
            (
                NN("stream", "STRING", "stream of the record"),
                NN("record_key", "STRING", "business key of the record (psn_no pseudonymised)"),
                NN("rule_id", "STRING", "the failed rule"),
                C("region_code", "STRING", "region the record is attributed to"),
                C("business_date", "DATE", "Asia/Shanghai business date of the record"),
                C("details", "JSON", "offending values, personal fields masked"),
                _RUN_ID,
                _PIPELINE,
                C("fixmedins_code", "STRING",
                  "dim_institution.fixmedins_code of a settlement or settlement list; null for other streams"),
                C("matter_code", "STRING", "dim_matter.matter_code of a filing case; null for other streams"),
            ),
            write="scope",
        ),
        Table(
            "dead_letters",
            "Records that could not be decoded or resolved; raw bytes stay in quarantine.",
            (
                NN("stream", "STRING", "stream the bytes were read for"),
                NN("source", "STRING", "file path / URI as listed, or Pub/Sub message id"),
                NN("error", "STRING", "why the record was dead-lettered"),
                C("size", "INT64", "size of the raw bytes"),
                C("sha256", "STRING", "hex SHA-256 of the raw bytes"),
                C("quarantine_path", "STRING", "where the raw bytes are kept"),
                C("received_at", "TIMESTAMP", "when the bytes were received"),
                _RUN_ID,
            ),
            write="scope",
        ),
        Table(
            "pipeline_runs",
            "One row per pipeline run; a streaming job has one row, status running.",
            (
                NN("run_id", "STRING", "UUID of the run"),
                NN("pipeline", "STRING", "nightly | stream"),
                NN("runner", "STRING", "Beam runner"),
                NN("started_at", "TIMESTAMP", "start of the run"),
                C("finished_at", "TIMESTAMP", "end of the run; null while running"),
                NN("status", "STRING", "running | succeeded | failed | abandoned"),
                C("as_of", "TIMESTAMP", "the run's cut-off instant"),
                C("options", "JSON", "the run's options"),
                C("error", "STRING", "why the run failed (not in WAREHOUSE.md's list: added)"),
                C("calendar_sources", "JSON",
                  "working-day calendar of each year in scope, year -> config | chinesecalendar"
                  " | weekdays (no official calendar: Monday-Friday); null for a streaming job"),
            ),
            key=("run_id",),
        ),
        Table(
            "pipeline_run_streams",
            "Per run and stream counters; a streaming job updates its rows as panes fire.",
            (
                NN("run_id", "STRING", "pipeline_runs.run_id"),
                NN("stream", "STRING", "stream name"),
                NN("read", "INT64", "records read"),
                NN("accepted", "INT64", "records decoded and accepted"),
                NN("duplicates", "INT64", "duplicate event_ids dropped"),
                NN("dead_lettered", "INT64", "records sent to dead_letters"),
                NN("late_dropped", "INT64", "records dropped as too late (0 in batch)"),
                NN("quality_failures", "INT64", "rows written to quality_failures"),
            ),
            key=("run_id", "stream"),
        ),
        Table(
            "dq_alerts",
            "Data-quality alerts raised (debounced ones kept with suppressed = true).",
            (
                NN("alert_id", "STRING", "stable id of the alert"),
                NN("raised_at", "TIMESTAMP", "when the alert was raised"),
                NN("kind", "STRING", "threshold, anomaly, silence, ..."),
                NN("subject", "STRING", "indicator code, rule_id or stream concerned"),
                C("region_code", "STRING", "region concerned"),
                C("period", "STRING", "period concerned"),
                C("observed", "FLOAT64", "observed value"),
                C("threshold", "FLOAT64", "threshold crossed"),
                NN("message", "STRING", "human-readable message"),
                C("channels", "JSON", "array of the channels notified"),
                NN("suppressed", "BOOL", "true when debounced (not sent)"),
            ),
            key=("alert_id",),
        ),
        Table(
            "dim_indicator",
            "The indicator catalogue (INDICATORS.md).",
            (
                NN("indicator_code", "STRING", "I04..I26, R01..R05, S01..S05, C01"),
                NN("name_zh", "STRING", "Chinese name"),
                NN("name_en", "STRING", "English name"),
                C("plan_number", "INT64", "number in the evaluation plan; null outside the plan"),
                C("population", "STRING", "population counted"),
                C("numerator_def", "STRING", "numerator definition"),
                C("denominator_def", "STRING", "denominator definition"),
                C("region_column", "STRING", "column attributing a record to a region"),
                NN("direction", "STRING", ">= or <="),
                C("default_target", "FLOAT64", "default target on the scale of value"),
                C("family", "STRING", "indicator family (plan, treatment, service, cost)"),
            ),
            key=("indicator_code",),
            write="all",
        ),
        Table(
            "dim_region",
            "Regions: counties, pooling regions (统筹地区) and provinces.",
            (
                NN("region_code", "STRING", "administrative division code"),
                NN("name", "STRING", "region name"),
                NN("level", "STRING", "county | pooling | province"),
                C("parent_code", "STRING", "parent region"),
                C("pooling_code", "STRING", "pooling region of a county"),
            ),
            key=("region_code",),
            write="all",
        ),
        Table(
            "dim_quality_rule",
            "The data-quality rules (from the expectation suites).",
            (
                NN("rule_id", "STRING", "E01..E09, T01..T09, F01..F04"),
                NN("stream", "STRING", "stream the rule checks"),
                NN("severity", "STRING", "blocking | quality"),
                C("description", "STRING", "what the rule checks"),
            ),
            key=("rule_id",),
            write="all",
        ),
        Table(
            "indicator_breakdown",
            "indicator_values split by institution or service matter; per (indicator, region,"
            " period, pipeline, dimension) the members' numerators and denominators add up"
            " exactly to the indicator_values row.",
            (
                NN("indicator_code", "STRING", "dim_indicator.indicator_code, e.g. I13"),
                NN("region_code", "STRING", "dim_region.region_code"),
                NN("region_level", "STRING", "county | pooling | province"),
                *_PERIOD,
                NN("pipeline", "STRING", "nightly | stream"),
                NN("dimension", "STRING", "institution | matter"),
                NN("member_code", "STRING",
                   "dim_institution.fixmedins_code (institution) or dim_matter.matter_code (matter);"
                   " '(none)' for records without one"),
                C("numerator", DECIMAL, "the member's part of the indicator_values numerator (exact)"),
                C("denominator", DECIMAL, "the member's part of the indicator_values denominator (exact)"),
                C("value", "FLOAT64", "the member's own numerator / denominator; null when 0/0"),
                C("target", "FLOAT64", "the region's target (as indicator_values.target)"),
                C("shortfall", DECIMAL,
                  "how much of the member's numerator would have to change for its own value to meet"
                  " the target: records (cases, matters, days) rounded up, or yuan rounded up to a"
                  " cent for money indicators; 0 when it meets it; null without a target"),
                C("shortfall_share", "FLOAT64",
                  "the member's share of the region's miss: shortfall / sum of its members'"
                  " shortfalls; null when the region meets its target"),
                C("region_shortfall", DECIMAL,
                  "how much of the region's numerator would have to change for the region to meet"
                  " the target (same rounding); 0 when it meets it; null without a target or when 0/0"),
                _RUN_ID,
                _COMPUTED_AT,
            ),
            # Unique, but replaced by scope: a member that drops out of a period on
            # a re-run must not leave its old row behind (the sums would break).
            key=("indicator_code", "region_code", *_PERIOD_KEY, "pipeline", "dimension", "member_code"),
            write="scope",
            partition_month="period_start",
            cluster_by=("indicator_code", "region_code", "member_code"),
        ),
        Table(
            "dim_institution",
            "Designated institutions (两定机构): institutions.csv, plus every fixmedins_code seen"
            " in the data (in_reference false), so every breakdown member resolves to a name.",
            (
                NN("fixmedins_code", "STRING", "institution code (H… hospital, P… pharmacy)"),
                NN("name", "STRING", "institution name; for a code not in the reference, a label saying so"),
                C("level", "STRING", "grade (e.g. 三级甲等); null when not in the reference"),
                C("type", "STRING", "H (hospital) | P (pharmacy); from the code's first letter when"
                  " not in the reference"),
                C("region_code", "STRING", "region of the institution (county, or city for 市本级);"
                  " when not in the reference, the region code embedded in the fixmedins_code if it is"
                  " a known region"),
                C("pooling_code", "STRING", "pooling region (统筹地区) of region_code"),
                NN("in_reference", "BOOL", "false for a code seen in the data but absent from institutions.csv"),
            ),
            key=("fixmedins_code",),
        ),
        Table(
            "dim_matter",
            "Service matters (matters.csv), plus every matter_code seen in the data (in_reference false).",
            (
                NN("matter_code", "STRING", "matter code, e.g. MANUAL_REIMB"),
                NN("name", "STRING", "matter name; for a code not in the reference, a label saying so"),
                NN("in_reference", "BOOL", "false for a code seen in the data but absent from matters.csv"),
            ),
            key=("matter_code",),
        ),
        Table(
            "manual_evidence",
            "Plan indicators that data cannot compute (and sub-items such as 12(1)), judged from"
            " documents, surveys and on-site checks; loaded by yibao evidence load from the file the"
            " agency fills in, replaced by (region_code, year, indicator_code).",
            (
                NN("region_code", "STRING", "dim_region.region_code"),
                NN("year", "INT64", "evaluation year"),
                NN("indicator_code", "STRING",
                   "plan number of the indicator ('12') or sub-item ('12(1)'), as in the plan (seed 000)"),
                C("value", "FLOAT64", "the figure found (a rate on the scale of 0..1, a count, ...)"),
                C("score", "FLOAT64", "the score given or claimed"),
                C("evidence", "STRING", "what the evidence shows (text)"),
                C("attachments", "JSON", "array of attachment names or links"),
                C("entered_by", "STRING", "who filled in the row"),
                C("entered_at", "TIMESTAMP", "when it was filled in (or loaded)"),
            ),
            key=("region_code", "year", "indicator_code"),
        ),
    )
}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown warehouse table {name!r}") from None


def appended_columns(name: str, have: Sequence[str]) -> tuple[Column, ...]:
    """The columns an older warehouse's table ``name``, whose columns are
    ``have``, gains on upgrade: the ones tables.py appends after them, when
    each is nullable or has a BACKFILL value.  Empty when there is nothing
    to add, or when the difference is anything else (a column removed,
    renamed, reordered; a NOT NULL one without a value), which the stores'
    column checks report instead: the one migration done silently."""
    t = table(name)
    old = list(have)
    if not old or len(old) >= len(t.columns) or t.column_names[: len(old)] != old:
        return ()
    new = t.columns[len(old):]
    if any(not c.nullable and (name, c.name) not in BACKFILL for c in new):
        return ()
    return new


# --- DuckDB --------------------------------------------------------------


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_ddl(name: str, stage: str | None = None) -> str:
    """CREATE TABLE for ``name``, or for a temp staging table ``stage`` shaped like it."""
    t = table(name)
    cols = ",\n".join(
        f"  {c.name} {DUCKDB_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in t.columns
    )
    head = f"CREATE OR REPLACE TEMP TABLE {stage}" if stage else f"CREATE TABLE IF NOT EXISTS {name}"
    return f"{head} (\n{cols}\n)"


def duckdb_comments(name: str) -> list[str]:
    """COMMENT ON statements, so descriptions show in duckdb_columns()."""
    t = table(name)
    return [f"COMMENT ON TABLE {t.name} IS {_sql_string(t.description)}"] + [
        f"COMMENT ON COLUMN {t.name}.{c.name} IS {_sql_string(c.description)}" for c in t.columns
    ]


# --- BigQuery ------------------------------------------------------------


def bigquery_schema(name: str) -> list:
    """google.cloud.bigquery.SchemaField list (imported here: DuckDB users skip it)."""
    from google.cloud import bigquery

    fields = []
    for c in table(name).columns:
        type_, precision, scale = BIGQUERY_TYPES[c.type]
        fields.append(
            bigquery.SchemaField(
                c.name,
                type_,
                mode="NULLABLE" if c.nullable else "REQUIRED",
                description=c.description,
                precision=precision,
                scale=scale,
            )
        )
    return fields


def _bq_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bigquery_type_sql(field) -> str:
    if field.precision is not None:
        return f"{field.field_type}({field.precision}, {field.scale})"
    return field.field_type


def bigquery_column_ddl(field) -> str:
    """A column of CREATE TABLE (or ALTER TABLE ADD COLUMN) for a bigquery_schema field."""
    return (f"{field.name} {bigquery_type_sql(field)}{' NOT NULL' if field.mode == 'REQUIRED' else ''}"
            f" OPTIONS(description={_bq_string(field.description)})")


def bigquery_ddl(name: str, dataset: str, table_id: str | None = None) -> str:
    """CREATE TABLE text; ``dataset`` is ``project.dataset`` or ``dataset``;
    ``table_id`` creates table ``name``'s twin under that name."""
    t = table(name)
    cols = ",\n".join(f"  {bigquery_column_ddl(f)}" for f in bigquery_schema(name))
    sql = f"CREATE TABLE IF NOT EXISTS `{dataset}.{table_id or t.name}` (\n{cols}\n)"
    if t.partition_month:
        sql += f"\nPARTITION BY DATE_TRUNC({t.partition_month}, MONTH)"
    if t.cluster_by:
        sql += f"\nCLUSTER BY {', '.join(t.cluster_by)}"
    return sql + f"\nOPTIONS(description={_bq_string(t.description)})"


# --- Arrow ---------------------------------------------------------------


def arrow_schema(name: str) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in table(name).columns]
    )


# --- Views ---------------------------------------------------------------
# One SQL text for both engines: only table references differ (``ref``
# maps a table name to ``name`` in DuckDB, `project.dataset.name` in
# BigQuery). Everything else is the common subset (CASE, STRING_AGG with
# ORDER BY, LEFT JOIN).

_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def view_indicator_latest(ref: Callable[[str], str]) -> str:
    """indicator_values with indicator and region names.

    indicator_values holds one row per key, always the one the latest
    publish wrote (publish replaces by key), so the "latest" value is simply
    the row there; nightly and stream rows of one period stay side by side,
    told apart by ``pipeline``.
    """
    cols = ", ".join(f"v.{c}" for c in table("indicator_values").column_names)
    return (
        f"SELECT {cols},\n"
        "  i.name_zh AS indicator_name_zh, i.name_en AS indicator_name_en,\n"
        "  i.plan_number, i.family, r.name AS region_name, r.parent_code, r.pooling_code\n"
        f"FROM {ref('indicator_values')} AS v\n"
        f"LEFT JOIN {ref('dim_indicator')} AS i ON i.indicator_code = v.indicator_code\n"
        f"LEFT JOIN {ref('dim_region')} AS r ON r.region_code = v.region_code"
    )


def view_region_scorecard(ref: Callable[[str], str], indicator_codes: Sequence[str]) -> str:
    """One row per region, period and pipeline; one value column per code.

    ``missed`` counts values with meets_target false, ``missed_indicators``
    lists their codes (comma-separated, sorted; null when none missed);
    ``evaluated`` counts values with a verdict (meets_target not null).
    """
    bad = [c for c in indicator_codes if not _CODE.match(c)]
    if bad:
        raise ValueError(f"indicator codes must be plain identifiers: {bad}")
    pivot = "".join(
        f"  MAX(CASE WHEN v.indicator_code = '{c}' THEN v.value END) AS {c},\n"
        for c in indicator_codes
    )
    return (
        "SELECT v.region_code, MAX(r.name) AS region_name, v.region_level,\n"
        "  v.period_type, v.period_start, v.period_end, v.pipeline,\n"
        f"{pivot}"
        "  COUNT(v.meets_target) AS evaluated,\n"
        "  COUNT(CASE WHEN v.meets_target = FALSE THEN 1 END) AS missed,\n"
        "  STRING_AGG(CASE WHEN v.meets_target = FALSE THEN v.indicator_code END, ','"
        " ORDER BY v.indicator_code) AS missed_indicators\n"
        f"FROM {ref('indicator_values')} AS v\n"
        f"LEFT JOIN {ref('dim_region')} AS r ON r.region_code = v.region_code\n"
        "GROUP BY v.region_code, v.region_level, v.period_type, v.period_start,"
        " v.period_end, v.pipeline"
    )


_VALUE_KEY = ("indicator_code", "region_code", "period_type", "period_start", "period_end", "pipeline")


def view_indicator_shortfall(ref: Callable[[str], str]) -> str:
    """Per missed (indicator, region, period, pipeline): the members
    (institutions or matters) with a shortfall, ranked by it, with names.

    ``region_shortfall`` is what the region lacks (records, or yuan for the
    money indicators); a member's ``shortfall`` is what it lacks to meet the
    target itself and ``shortfall_share`` its part of the members' total, so
    ``shortfall_rank`` 1 is the member that contributes most to the miss.
    Members meeting the target (shortfall 0) are left out.
    """
    on = " AND ".join(f"v.{k} = b.{k}" for k in _VALUE_KEY)
    part = ", ".join(f"b.{k}" for k in (*_VALUE_KEY, "dimension"))
    return (
        "SELECT b.indicator_code, i.name_zh AS indicator_name_zh, i.name_en AS indicator_name_en,\n"
        "  b.region_code, r.name AS region_name, b.region_level, r.pooling_code,\n"
        "  b.period_type, b.period_start, b.period_end, b.pipeline,\n"
        "  v.numerator AS region_numerator, v.denominator AS region_denominator,\n"
        "  v.value AS region_value, v.target, v.direction, b.region_shortfall,\n"
        "  b.dimension, b.member_code, COALESCE(inst.name, m.name) AS member_name,\n"
        "  inst.level AS institution_level, inst.type AS institution_type,\n"
        "  b.numerator, b.denominator, b.value, b.shortfall, b.shortfall_share,\n"
        f"  ROW_NUMBER() OVER (PARTITION BY {part}\n"
        "    ORDER BY b.shortfall DESC, b.denominator DESC, b.member_code) AS shortfall_rank\n"
        f"FROM {ref('indicator_breakdown')} AS b\n"
        f"JOIN {ref('indicator_values')} AS v ON {on}\n"
        f"LEFT JOIN {ref('dim_indicator')} AS i ON i.indicator_code = b.indicator_code\n"
        f"LEFT JOIN {ref('dim_region')} AS r ON r.region_code = b.region_code\n"
        f"LEFT JOIN {ref('dim_institution')} AS inst\n"
        "  ON b.dimension = 'institution' AND inst.fixmedins_code = b.member_code\n"
        f"LEFT JOIN {ref('dim_matter')} AS m ON b.dimension = 'matter' AND m.matter_code = b.member_code\n"
        "WHERE v.meets_target = FALSE AND b.shortfall > 0"
    )


def views(ref: Callable[[str], str], indicator_codes: Sequence[str]) -> dict[str, str]:
    return {
        "v_indicator_latest": view_indicator_latest(ref),
        "v_region_scorecard": view_region_scorecard(ref, indicator_codes),
        "v_indicator_shortfall": view_indicator_shortfall(ref),
    }
