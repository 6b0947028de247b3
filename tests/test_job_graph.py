"""The nightly's job graph holds no step whose input is the whole data set
(issue 17): record data flows only through keyed steps; what meets in one
place (side inputs, the global steps) is small.  The Dataflow form of the
same check runs on the ``--dry_run`` job in tests/test_production_path.py."""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from datagen.generate import generate
from pipelines import job_graph, nightly
from pipelines.options import NightlyOptions


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    generate(str(root), seed=3, persons=50, months="2023-02..2023-02")
    opts = PipelineOptions(["--input", str(root), "--as-of", "2023-12-31T23:59:59+08:00",
                            "--months", "2023-01..2023-12"]).view_as(NightlyOptions)
    return root, nightly.make_context(opts)


def test_nightly_graph_has_no_step_over_the_whole_data_set(ctx, tmp_path):
    root, context = ctx
    p = beam.Pipeline()
    nightly.build(p, str(root), context, f"duckdb:///{tmp_path}/w.duckdb", "run", str(tmp_path / "q"),
                  str(tmp_path / "s"), shards=64)
    graph = job_graph.pipeline_dict(p)
    names = {t["uniqueName"] for t in graph["components"]["transforms"].values()}
    assert {"Finalize", "Publish", "SumParts", "ComputeShards"} <= names
    assert job_graph.whole_data_inputs(graph) == []


def test_a_side_input_of_records_is_found():
    """The check can fail: the one-worker design (every stream's batches as
    side inputs of one step) is flagged."""
    p = beam.Pipeline()
    batches = p | "ReadSettlement" >> beam.Create([1, 2, 3])
    _ = (p | "Start" >> beam.Create([None])
         | "ComputeIndicators" >> beam.Map(lambda _, xs: len(xs), beam.pvalue.AsList(batches)))
    assert job_graph.whole_data_inputs(job_graph.pipeline_dict(p)) == [
        "ComputeIndicators <- ReadSettlement/Map(decode)[None] (side input)"]


def test_a_global_step_fed_by_records_is_found():
    p = beam.Pipeline()
    batches = p | "ReadSettlement" >> beam.Create([1, 2, 3])
    parts = p | "SumParts" >> beam.Create([("I08", 1)])
    _ = batches | "Finalize" >> beam.Map(lambda x, ps: x, beam.pvalue.AsList(parts))
    found = job_graph.whole_data_inputs(job_graph.pipeline_dict(p))
    assert found == ["Finalize <- ReadSettlement/Map(decode)[None] (main input of a global step)"]
