"""indicator_breakdown: indicator_values split by member — the institution
(fixmedins_code) or the service matter (matter_code) — with the shortfall
behind a missed target (WAREHOUSE.md, catalog.BREAKDOWN).

The component SQL of a split indicator groups by one more key, the member,
and lands in the temp table ``member_parts`` (``components._rows``); the
region-level components the roll-up turns into indicator_values are exact
sums of those rows, and so is every breakdown row below: the members of a
region and period add up to its indicator_values row by construction.  The
member-level rows never become Python objects in the nightly job: this
roll-up is one vectorised DuckDB query (county -> pooling region ->
province, MONTH and YTD as ``transforms.rollup``), returning Arrow.  The
catalogue indicators (I04 S01 S05) split by their matters.csv rows at each
region (``rollup.catalogue_members``).

The shortfall (rounded up: whole records / cases / matters / days, or a
cent of yuan for catalog.MONEY): the region's — how much of its numerator
would have to change for it to meet the target — and each member's own;
a member's ``shortfall_share`` is its part of the members' total when the
region misses.
"""
from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa

from transforms.context import RunContext
from transforms.indicators.catalog import BREAKDOWN, BY_CODE, MONEY
from transforms.indicators.components import MEMBER_PARTS, Component
from transforms.rollup import catalogue_members, months_of, periods
from warehouse.tables import arrow_schema

#: Targets as exact decimals (Decimal(str(target)), as indicator_values' meets_target).
_TARGET = pa.decimal128(38, 12)
_PARTS = pa.decimal128(38, 6)


def member_components(con: duckdb.DuckDBPyConnection, codes) -> list[Component]:
    """The member-level components of ``codes`` on ``con`` (small inputs: a
    streaming pane keeps them in its state)."""
    if not codes or not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [MEMBER_PARTS]).fetchone()[0]:
        return []
    rows = con.execute(f"SELECT code, attr, month, num, den, member FROM {MEMBER_PARTS} "
                       f"WHERE list_contains(?, code)", [sorted(codes)]).fetchall()
    return [Component(code, attr, month, {"num": num, "den": den}, member)
            for code, attr, month, num, den, member in rows]


def load_member_components(con: duckdb.DuckDBPyConnection, components: list[Component]) -> None:
    """``member_parts`` on ``con`` from member-level Components (the stream's month)."""
    mine = [c for c in components if c.member is not None]
    table = pa.table({
        "code": [c.code for c in mine], "attr": [c.attr for c in mine],
        "month": [c.month for c in mine], "member": [c.member for c in mine],
        "num": [Decimal(c.parts.get("num", 0)) for c in mine],
        "den": [Decimal(c.parts.get("den", 0)) for c in mine],
    }, schema=pa.schema([("code", pa.string()), ("attr", pa.string()), ("month", pa.date32()),
                         ("member", pa.string()), ("num", _PARTS), ("den", _PARTS)]))
    _register(con, MEMBER_PARTS, table)


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


def _inputs(con: duckdb.DuckDBPyConnection, ctx: RunContext, flow: list[str], catalogue: list[str]) -> None:
    """The small lookup tables of the roll-up: attribution, periods, targets,
    indicator traits, and the catalogue indicators' matter rows per region."""
    ref = ctx.ref
    level = dict(ref.output_regions())
    attrs = [r[0] for r in con.execute(f"SELECT DISTINCT attr FROM {MEMBER_PARTS} "
                                       "WHERE attr IS NOT NULL").fetchall()]
    pairs = [(a, region) for a in attrs for region in ref.attribution(a) if region in level]
    _register(con, "bd_attr", pa.table({"attr": [a for a, _ in pairs], "region_code": [r for _, r in pairs],
                                        "region_level": [level[r] for _, r in pairs]},
                                       schema=pa.schema([("attr", pa.string()), ("region_code", pa.string()),
                                                         ("region_level", pa.string())])))
    spans = [(t, s, e, m) for t, s, e, last in periods(ctx) for m in months_of(t, last)]
    _register(con, "bd_periods", pa.table(
        {"period_type": [p[0] for p in spans], "period_start": [p[1] for p in spans],
         "period_end": [p[2] for p in spans], "month": [p[3] for p in spans]},
        schema=pa.schema([("period_type", pa.string()), ("period_start", pa.date32()),
                          ("period_end", pa.date32()), ("month", pa.date32())])))
    codes, years = flow + catalogue, sorted({s.year for _, s, _, _ in periods(ctx)})
    targets = [(c, y, r, ctx.config.target(c, y, r)) for c in codes for y in years for r in level]
    _register(con, "bd_targets", pa.table(
        {"code": [t[0] for t in targets], "year": [t[1] for t in targets],
         "region_code": [t[2] for t in targets], "target": [t[3] for t in targets],
         "t": [None if t[3] is None else Decimal(str(t[3])).quantize(Decimal(10) ** -12) for t in targets]},
        schema=pa.schema([("code", pa.string()), ("year", pa.int64()), ("region_code", pa.string()),
                          ("target", pa.float64()), ("t", _TARGET)])))
    _register(con, "bd_codes", pa.table(
        {"code": codes, "dimension": [BREAKDOWN[c] for c in codes],
         "direction": [BY_CODE[c].direction for c in codes],
         "per_unit": [100 if c in MONEY else 1 for c in codes],
         "unit": [Decimal("0.01") if c in MONEY else Decimal(1) for c in codes]},
        schema=pa.schema([("code", pa.string()), ("dimension", pa.string()), ("direction", pa.string()),
                          ("per_unit", pa.int64()), ("unit", pa.decimal128(38, 2))])))
    rows = [(c, r, lvl, m, n, d) for c in catalogue for r, lvl in ref.output_regions()
            for m, (n, d) in catalogue_members(c, ref.applicable_matters(r)).items()]
    _register(con, "bd_catalogue", pa.table(
        {"code": [x[0] for x in rows], "region_code": [x[1] for x in rows],
         "region_level": [x[2] for x in rows], "member": [x[3] for x in rows],
         "num": [Decimal(x[4]) for x in rows], "den": [Decimal(x[5]) for x in rows]},
        schema=pa.schema([("code", pa.string()), ("region_code", pa.string()), ("region_level", pa.string()),
                          ("member", pa.string()), ("num", _PARTS), ("den", _PARTS)])))


def _gap(num: str, den: str) -> str:
    """What is missing to meet the target, in numerator units (may be <= 0)."""
    return f"CASE WHEN c.direction = '>=' THEN t.t * {den} - {num} ELSE {num} - t.t * {den} END"


def _round_up(gap: str) -> str:
    return f"CASE WHEN {gap} <= 0 THEN 0 ELSE ceil(({gap}) * c.per_unit) * c.unit END"


def breakdown_table(con: duckdb.DuckDBPyConnection, ctx: RunContext,
                    codes: set[str] | None = None, catalogue: bool = True) -> pa.Table:
    """indicator_breakdown rows (without pipeline, run_id, computed_at) of
    every split indicator (or of ``codes``), every output region and period
    of ``ctx``: one row per member with components there, from
    ``member_parts`` on ``con``; the catalogue indicators too unless
    ``catalogue`` is false."""
    wanted = [c for c in BREAKDOWN if codes is None or c in codes]
    flow = [c for c in wanted if BY_CODE[c].time_rule == "flow"]
    cat = [c for c in wanted if BY_CODE[c].time_rule == "catalogue"] if catalogue else []
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {MEMBER_PARTS} (code VARCHAR, attr VARCHAR, month DATE, "
                "member VARCHAR, num DECIMAL(38,6), den DECIMAL(38,6))")
    _inputs(con, ctx, flow, cat)
    key = "code, region_code, period_type, period_start, period_end"
    sql = f"""
    WITH m AS (
      SELECT p.code, a.region_code, a.region_level, r.period_type, r.period_start, r.period_end, p.member,
             sum(p.num) AS num, sum(p.den) AS den
      FROM {MEMBER_PARTS} p JOIN bd_attr a ON a.attr = p.attr JOIN bd_periods r ON r.month = p.month
      WHERE list_contains($flow, p.code)
      GROUP BY ALL
      UNION ALL
      SELECT k.code, k.region_code, k.region_level, r.period_type, r.period_start, r.period_end, k.member,
             k.num, k.den
      FROM bd_catalogue k CROSS JOIN (SELECT DISTINCT period_type, period_start, period_end FROM bd_periods) r
    ), g AS (
      SELECT m.*, sum(m.num) OVER w AS total_num, sum(m.den) OVER w AS total_den
      FROM m WINDOW w AS (PARTITION BY {key})
    ), s AS (
      SELECT g.*, c.dimension, t.target,
             CASE WHEN t.t IS NOT NULL THEN {_round_up(_gap('g.num', 'g.den'))} END AS shortfall,
             CASE WHEN t.t IS NOT NULL AND g.total_den <> 0
                  THEN {_round_up(_gap('g.total_num', 'g.total_den'))} END AS region_shortfall
      FROM g JOIN bd_codes c ON c.code = g.code
      LEFT JOIN bd_targets t ON t.code = g.code AND t.region_code = g.region_code
                            AND t.year = year(g.period_start)
    )
    SELECT code AS indicator_code, region_code, region_level, period_type, period_start, period_end,
           dimension, member AS member_code,
           CAST(num AS DECIMAL(38,6)) AS numerator, CAST(den AS DECIMAL(38,6)) AS denominator,
           CASE WHEN den <> 0 THEN CAST(num AS DOUBLE) / CAST(den AS DOUBLE) END AS value, target,
           CAST(shortfall AS DECIMAL(38,6)) AS shortfall,
           -- the members' total summed as decimals: a float sum depends on the row order
           CASE WHEN region_shortfall > 0 THEN CAST(shortfall AS DOUBLE)
                / CAST(sum(shortfall) OVER (PARTITION BY {key}) AS DOUBLE) END AS shortfall_share,
           CAST(region_shortfall AS DECIMAL(38,6)) AS region_shortfall
    FROM s ORDER BY {key}, member"""
    table = con.sql(sql, params={"flow": flow}).to_arrow_table()
    schema = arrow_schema("indicator_breakdown")
    return table.cast(pa.schema([schema.field(n) for n in table.column_names]))
