"""``Validate(stream)``: a stream's quality suite executed on record batches.

Input: Arrow tables (or record batches) of a stream's contract columns, each
one set of records "evaluated together" (E09 looks across the records of its
set). Output: the same records with ``failed_rules`` (list<string>: the
rule_ids each record fails, catalogue order). The rules come from the
compiled Great Expectations suite (``expectations.verdict_sql``), executed
vectorised in DuckDB per batch — never record by record.

The nightly pipeline evaluates the same compiled suites inside its compute
step (the verdicts feed the indicators there); this transform is the
stand-alone form, for pipelines that want verdicts as data.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

import expectations
from reference import Reference
from transforms.compute import connect


def failed_rules(stream: str, table: pa.Table, ref: Reference) -> pa.Table:
    """``table`` plus a ``failed_rules`` column, in the input's row order."""
    rules = [r.rule_id for r in expectations.rules(stream)]
    con = connect()
    try:
        con.register("batch", table.append_column("_row", pa.array(range(table.num_rows), pa.int64())))
        listed = ", ".join(f"CASE WHEN \"{r}\" THEN '{r}' END" for r in rules)
        out = con.sql(f"""SELECT * EXCLUDE ({", ".join(f'"{r}"' for r in rules)}, _row),
                                 list_filter([{listed}], lambda x: x IS NOT NULL) AS failed_rules
                          FROM ({expectations.verdict_sql(stream, ref, "batch")}) ORDER BY _row"""
                      ).to_arrow_table()
    finally:
        con.close()
    return out


class _ValidateBatch(beam.DoFn):
    def __init__(self, stream: str, ref: Reference):
        self.stream, self.ref = stream, ref

    def process(self, batch):
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        yield failed_rules(self.stream, table, self.ref)


class Validate(beam.PTransform):
    """Arrow batches of ``stream`` -> the same batches with ``failed_rules``."""

    def __init__(self, stream: str, ref: Reference):
        super().__init__()
        self.stream, self.ref = stream, ref

    def expand(self, batches):
        return batches | f"Validate{self.stream.title()}" >> beam.ParDo(_ValidateBatch(self.stream, self.ref))
