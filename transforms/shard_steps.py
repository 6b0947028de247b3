"""The sharded nightly's steps (ARCHITECTURE.md "Scale-out", docs/DESIGN.md).

Each step works on one key bucket (transforms/shards.py) with the same
vectorised DuckDB SQL as the one-connection ``compute.compute_run``; only
small aggregates meet globally:

1. ``RouteDeliveries``: a decoded batch split by hash(event_id).
2. ``ResolveDeliveries`` (per event_id bucket): one copy per event_id,
   conflicting copies quarantined here, in parallel; per-stream counts;
   accepted records re-routed by their family's business key.
3. ``Rekey`` (per business-key bucket): settlements send the setl_ids their
   latest reversals name to those setl_ids' buckets; enrolment versions at
   every period end are re-keyed by certno; the others pass.
4. ``ComputeShard``: the family's verdicts, components, rule counts and
   quality_failures (a Parquet file per shard, never one element).
5. ``SumParts`` (CombinePerKey per indicator or rule): exact decimal sums.
6. ``Finalize``: one small step: roll-up, targets, C01, I19, breakdown.

Results do not depend on the bucket count: every computation that needs
records together has them in one bucket, and the rest are exact sums.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from decimal import Decimal
from typing import NamedTuple

import apache_beam as beam
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

import expectations
import schemas
from pipelines import progress
from transforms import compute, members, prepare, shards
from transforms.breakdown import breakdown_table
from transforms.context import RunContext
from transforms.indicators import components as comp
from transforms.indicators.catalog import BREAKDOWN, BY_CODE
from transforms.quarantine import quarantine
from transforms.rollup import indicator_rows, rule_rows
from transforms.timing import timed
from transforms.versions import encode_record, resolve_deliveries
from warehouse.tables import arrow_schema

#: One row per (kind, code, attribution, month, member, part): the shards' aggregates.
PARTS_SCHEMA = pa.schema([("kind", pa.string()), ("code", pa.string()), ("attr", pa.string()),
                          ("month", pa.date32()), ("member", pa.string()), ("name", pa.string()),
                          ("value", pa.decimal128(38, 6))])
_GROUP = ["kind", "code", "attr", "month", "member", "name"]
#: The tables a family's shard reads (each from its own files, else empty).
FAMILY_TABLES = {"settlement": ("settlement_accepted", "settlement_list_accepted"),
                 "contribution": ("contribution_accepted",), "filing": ("filing_accepted",),
                 "person": ("enrolment_versions",)}


class Limits(NamedTuple):
    """What one bucket's DuckDB may use: its memory limit and its threads
    (None: DuckDB's defaults). A worker computing several buckets at once
    shares its memory and cores among them (pipelines/nightly.py)."""
    memory: str | None = None
    threads: int | None = None


@contextlib.contextmanager
def _connection(limits: Limits):
    """A file-backed DuckDB in a private temp folder (it spills there)."""
    with tempfile.TemporaryDirectory(prefix="yibao-shard-") as work:
        con = compute.connect(os.path.join(work, "shard.duckdb"), memory_limit=limits.memory,
                              threads=limits.threads)
        try:
            yield con, work
        finally:
            con.close()


def _read(con: duckdb.DuckDBPyConnection, name: str, paths: list[str], bucket: int,
          empty: pa.Table | None = None) -> None:
    """Relation ``name``: the rows of ``bucket`` in the bucketed files ``paths``.
    Local files: a view DuckDB streams, skipping other buckets' row groups by
    their statistics; remote ones: their row groups read by range
    (shards.read_bucket) into a table in DuckDB's storage, which spills."""
    paths = list(dict.fromkeys(paths))
    if paths and not any("://" in p for p in paths):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * EXCLUDE (_bucket) "
                    f"FROM read_parquet({paths!r}) WHERE _bucket = {int(bucket)}")
        return
    con.register(f"{name}_arrow", shards.read_bucket(paths, bucket, empty))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


def _empty(table: str) -> pa.Table:
    return schemas.load(table.removesuffix("_accepted")).table.empty_table()


class RouteDeliveries(beam.DoFn):
    """Decoded batches -> ((stream, event_id bucket), (parquet path, rows)).

    Batches are buffered over the bundle and written once ``FLUSH_ROWS``
    records are buffered (and at the bundle's end): one file sorted by
    bucket per flush (shards.write_buckets), whose path goes to every bucket
    with rows in it."""

    FLUSH_ROWS = 500_000

    def __init__(self, stream: str, staging_dir: str, n: int):
        self.stream, self.staging_dir, self.n = stream, staging_dir, n

    def setup(self):
        self.con = compute.connect()

    def start_bundle(self):
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def process(self, batch):
        yield from timed("RouteDeliveries", self._route(batch))

    def finish_bundle(self):
        for kv in timed("RouteDeliveries", self._flush()):
            yield WindowedValue(kv, MIN_TIMESTAMP, [GlobalWindow()])

    def _route(self, batch):
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self.buffer.append(table)
        self.buffered += table.num_rows
        if self.buffered >= self.FLUSH_ROWS:
            yield from self._flush()

    def _flush(self):
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer)
        self.buffer, self.buffered = [], 0
        self.con.register("batch", table)
        table = shards.bucketed(self.con, "batch", shards.DELIVERY_KEY, self.n)
        self.con.unregister("batch")
        path, rows = shards.write_buckets(table, self.staging_dir + f"/deliveries/{self.stream}")
        for bucket, n in rows.items():
            yield (self.stream, bucket), (path, n)

    def teardown(self):
        self.con.close()


class ResolveDeliveries(beam.DoFn):
    """One event_id bucket of a stream: one copy per event_id (conflicting
    copies are dead letters), the stream's counts (``meta``), and the
    accepted records routed to their business-key buckets."""

    def __init__(self, ctx: RunContext, staging_dir: str, quarantine_dir: str, n: int,
                 limits: Limits):
        self.ctx, self.staging_dir, self.quarantine_dir = ctx, staging_dir, quarantine_dir
        self.n, self.limits = n, limits

    def process(self, element):
        yield from timed("ResolveDeliveries", self._resolve(element))

    def _resolve(self, element):
        (stream, bucket), parts = element
        parts = list(parts)
        with _connection(self.limits) as (con, _):
            _read(con, "raw", [p for p, _ in parts], bucket)
            result = resolve_deliveries(con, stream, "raw")
            for row in result["conflicts"].to_pylist():
                source = f"{row.pop('_source')}#record={row.pop('_index')}"
                dl = quarantine(self.quarantine_dir, stream, source,
                                f"conflicting duplicate of event_id {row['event_id']!r}: differs from "
                                "the copy kept", encode_record(stream, row))
                yield beam.pvalue.TaggedOutput("dead_letters", dl.as_dict())
            yield beam.pvalue.TaggedOutput("meta", {
                "stream": stream, "decoded": sum(n for _, n in parts),
                "duplicates": result["duplicates"], "conflicts": result["conflicts"].num_rows,
                "months": compute.records_by_month(con, self.ctx, stream),
                "seen": members.seen_codes(con, [stream])})
            family = shards.FAMILY[stream]
            table = shards.bucketed(con, f"{stream}_accepted", shards.BUSINESS_KEY[stream], self.n)
            path, rows = shards.write_buckets(table, self.staging_dir + f"/{family}")
            for target in rows:
                yield (family, target), (f"{stream}_accepted", path)


class Rekey(beam.DoFn):
    """One business-key bucket: what the compute step needs beyond its own
    records is sent to the bucket that needs it."""

    def __init__(self, ctx: RunContext, staging_dir: str, n: int, limits: Limits):
        self.ctx, self.staging_dir, self.n, self.limits = ctx, staging_dir, n, limits

    def process(self, element):
        yield from timed("Rekey", self._rekey(element))

    def _rekey(self, element):
        (family, bucket), items = element
        items = list(items)
        if family == "enrolment":
            yield from self._versions(items, bucket)
            return
        for item in items:
            yield (family, bucket), item
        settlements = [p for name, p in items if name == "settlement_accepted"]
        if family == "settlement" and settlements:
            with _connection(self.limits) as (con, _):
                _read(con, "settlement_accepted", settlements, bucket)
                ids = shards.bucketed(con, f"({prepare.reversed_ids_sql(self.ctx)})", ("init_setl_id",),
                                      self.n)
                for target, piece in shards.split_sorted(ids):
                    yield ("settlement", target), ("reversed_ids", piece.column(0).to_pylist())

    def _versions(self, items, bucket: int):
        """Enrolment versions at every period end (prepare.enrolment_versions),
        re-keyed by certno: I09 and E09 look at one person's enrolments."""
        with _connection(self.limits) as (con, _):
            _read(con, "enrolment_accepted", [p for _, p in items], bucket)
            prepare.enrolment_versions(con, self.ctx)
            table = shards.bucketed(con, "enrolment_versions", shards.PERSON_KEY, self.n)
            path, rows = shards.write_buckets(table, self.staging_dir + "/person")
            for target in rows:
                yield ("person", target), ("enrolment_versions", path)


class ComputeShard(beam.DoFn):
    """One family bucket -> its aggregates (main output: ((kind, code), parts
    table)) and its quality_failures as a Parquet file (``failures``)."""

    def __init__(self, ctx: RunContext, staging_dir: str, limits: Limits):
        self.ctx, self.staging_dir, self.limits = ctx, staging_dir, limits

    def process(self, element):
        yield from timed("ComputeShards", self._compute(element))

    def _compute(self, element):
        (family, bucket), items = element
        progress.note_stage("computing indicators")
        items = list(items)
        with _connection(self.limits) as (con, _):
            for table in FAMILY_TABLES[family]:
                paths = [p for name, p in items if name == table]
                _read(con, table, paths, bucket, None if paths else _empty(table))
            prepare.register_regions(con, self.ctx)
            comp.reset_member_parts(con)
            if family == "settlement":
                ids = sorted({i for name, v in items if name == "reversed_ids" for i in v})
                con.register("reversed_ids", pa.table({"init_setl_id": pa.array(ids, pa.string())}))
                out = compute.settlement_family(con, self.ctx, "SELECT init_setl_id FROM reversed_ids")
            elif family == "person":
                out = compute.enrolment_family(con, self.ctx)
            else:
                out = getattr(compute, f"{family}_family")(con, self.ctx)
            parts = parts_table(con, out)
        # Region-level sums travel as elements (small); member-level rows of the
        # split indicators go to one file sorted by indicator, read per indicator
        # by BreakdownByCode: no step holds every member of every indicator.
        region = sum_parts(_without_member(parts))
        for code in pc.unique(region.column("code")).to_pylist():
            mine = region.filter(pc.equal(region.column("code"), code))
            yield (mine.column("kind")[0].as_py(), code), mine
        members = parts.filter(pc.is_valid(parts.column("member")))
        if members.num_rows:
            index = pc.index_in(members.column("code"), pa.array(SPLIT_CODES)).cast(pa.uint64())
            members = members.append_column("_bucket", index).sort_by("_bucket")
            path, rows = shards.write_buckets(members, self.staging_dir + "/members")
            for code_index in rows:
                yield beam.pvalue.TaggedOutput("members", (code_index, path))
        if out.failures:
            rows = [dict(f, pipeline="nightly") for f in out.failures]
            schema = arrow_schema("quality_failures")
            table = pa.Table.from_pylist(rows, schema=pa.schema([schema.field(k) for k in rows[0]]))
            path = shards.write(table, self.staging_dir + "/failures")
            yield beam.pvalue.TaggedOutput("failures", {
                "path": path, "counts": dict(Counter(f["stream"] for f in out.failures))})


def parts_table(con: duckdb.DuckDBPyConnection, out: compute.FamilyOutput) -> pa.Table:
    """A family's components and rule counts as rows of PARTS_SCHEMA; the
    split indicators' rows are their member-level rows (member_parts), whose
    sums are the region-level components."""
    rows = [("indicator", c) for c in out.components if c.code not in BREAKDOWN]
    rows += [("rule", c) for c in out.rule_parts]
    flat = [(kind, c.code, c.attr, c.month, None, name, Decimal(v))
            for kind, c in rows for name, v in c.parts.items()]
    table = pa.table(list(zip(*flat, strict=True)) if flat else [[]] * 7, schema=PARTS_SCHEMA)
    member_rows = con.sql(f"""
        SELECT 'indicator' AS kind, code, attr, month, member, 'num' AS name, num AS value
        FROM {comp.MEMBER_PARTS}
        UNION ALL
        SELECT 'indicator', code, attr, month, member, 'den', den FROM {comp.MEMBER_PARTS}""").to_arrow_table()
    return pa.concat_tables([table, member_rows.cast(PARTS_SCHEMA)])


#: The split indicators (catalog.BREAKDOWN), numbered: the bucket of their member rows.
SPLIT_CODES = sorted(BREAKDOWN)
#: The split indicators whose members come from the reference (matters.csv), not records.
BY_CATALOGUE = [c for c in SPLIT_CODES if BY_CODE[c].time_rule == "catalogue"]


def _without_member(parts: pa.Table) -> pa.Table:
    return parts.set_column(parts.schema.get_field_index("member"), "member",
                            pa.nulls(parts.num_rows, pa.string()))


def _with_pipeline(table: pa.Table) -> pa.Table:
    return table.append_column(arrow_schema("indicator_breakdown").field("pipeline"),
                               pa.array(["nightly"] * table.num_rows, pa.string()))


class BreakdownByCode(beam.DoFn):
    """One split indicator's member rows from every shard (bucketed files) ->
    its indicator_breakdown rows as a Parquet file (path)."""

    def __init__(self, ctx: RunContext, staging_dir: str, limits: Limits):
        self.ctx, self.staging_dir, self.limits = ctx, staging_dir, limits

    def process(self, element):
        yield from timed("BreakdownByCode", self._breakdown(element))

    def _breakdown(self, element):
        code_index, paths = element
        code = SPLIT_CODES[code_index]
        with _connection(self.limits) as (con, _):
            _read(con, "member_rows", list(paths), code_index)
            comp.reset_member_parts(con)
            con.execute(f"""INSERT INTO {comp.MEMBER_PARTS}
                SELECT code, attr, month, member, coalesce(sum(value) FILTER (name = 'num'), 0),
                       coalesce(sum(value) FILTER (name = 'den'), 0) FROM member_rows GROUP BY ALL""")
            table = breakdown_table(con, self.ctx, codes={code}, catalogue=False)
        if table.num_rows:
            yield shards.write(_with_pipeline(table), self.staging_dir + "/breakdown")


def sum_parts(table: pa.Table) -> pa.Table:
    """Exact decimal sums per (kind, code, attr, month, member, part)."""
    summed = table.group_by(_GROUP, use_threads=False).aggregate([("value", "sum")])
    return summed.rename_columns(_GROUP + ["value"]).cast(PARTS_SCHEMA)


class SumParts(beam.CombineFn):
    """Per indicator or rule: the shards' parts tables, summed exactly."""

    def create_accumulator(self):
        return PARTS_SCHEMA.empty_table()

    def add_input(self, acc, table):
        return sum_parts(pa.concat_tables([acc, table]))

    def merge_accumulators(self, accs):
        return sum_parts(pa.concat_tables(list(accs)))

    def extract_output(self, acc):
        return acc


#: Parts whose sums are whole counts or money (back to the types compute_run gives).
_INTS = {"checked", "failed", "active"}
_CENTS = {"sum"}  # C01: a sum of amounts with two decimals, as DuckDB's sum gives it


def _value(name: str, value: Decimal):
    if name in _INTS:
        return int(value)
    if name in _CENTS:
        return value.quantize(Decimal("0.01"))
    return value


def finish(ctx: RunContext, parts: pa.Table, meta: list[dict], failures: list[dict],
           breakdown_files: list[str], staging_dir: str) -> compute.RunResult:
    """The run's rows from the summed region-level parts and the shards'
    counts; the breakdown: BreakdownByCode's files plus the catalogue
    indicators' rows (from the reference, written here)."""
    region = sum_parts(_without_member(parts))
    grouped: dict[tuple, dict] = {}
    for kind, code, attr, month, _, name, value in zip(*region.to_pydict().values(), strict=True):
        grouped.setdefault((kind, code, attr, month), {})[name] = _value(name, value)
    components = [comp.Component(c, a, m, p) for (k, c, a, m), p in grouped.items() if k == "indicator"]
    components += comp.population_components(ctx)
    rule_parts = [comp.Component(c, a, m, p) for (k, c, a, m), p in grouped.items() if k == "rule"]
    rules = [r for s in schemas.STREAM_NAMES for r in expectations.rules(s)]
    with contextlib.closing(compute.connect()) as con:
        comp.reset_member_parts(con)
        catalogue = breakdown_table(con, ctx, codes=set(BY_CATALOGUE), catalogue=True)
    files = list(breakdown_files)
    if catalogue.num_rows:
        files.append(shards.write(_with_pipeline(catalogue), staging_dir + "/breakdown"))
    return compute.RunResult(
        indicator_values=indicator_rows(components, ctx),
        quality_rule_results=rule_rows(rule_parts, ctx, rules),
        quality_failures=[],
        failure_files=[f["path"] for f in failures],
        records_by_month=_months(meta),
        breakdown_files=files,
        members_seen=_seen(meta),
        failure_counts=dict(sum((Counter(f["counts"]) for f in failures), Counter())),
    )


def _months(meta: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {s: Counter() for s in schemas.STREAM_NAMES}
    for m in meta:
        out[m["stream"]].update(m["months"])
    return {s: dict(sorted(c.items())) for s, c in out.items()}


def _seen(meta: list[dict]) -> dict[str, list[str]]:
    out: dict[str, set] = {"institution": set(), "matter": set()}
    for m in meta:
        for dimension, codes in m["seen"].items():
            out[dimension] |= set(codes)
    return {k: sorted(v) for k, v in out.items()}


def stream_stats(meta: list[dict]) -> list[dict]:
    """Per stream: decoded, duplicates, conflicts summed over its buckets."""
    out = {}
    for m in meta:
        s = out.setdefault(m["stream"], {"stream": m["stream"], "decoded": 0, "duplicates": 0,
                                         "conflicts": 0})
        for k in ("decoded", "duplicates", "conflicts"):
            s[k] += m[k]
    return list(out.values())


class Finalize(beam.DoFn):
    """The one global step: every summed aggregate (side input) -> RunResult."""

    def __init__(self, ctx: RunContext, staging_dir: str):
        self.ctx, self.staging_dir = ctx, staging_dir

    def process(self, _, parts, meta, failures, breakdown_files):
        yield from timed("Finalize", self._finish(parts, meta, failures, breakdown_files))

    def _finish(self, parts, meta, failures, breakdown_files):
        tables = [t for _, t in parts]
        yield finish(self.ctx, pa.concat_tables(tables) if tables else PARTS_SCHEMA.empty_table(),
                     meta, failures, breakdown_files, self.staging_dir)
