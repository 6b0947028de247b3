"""Checks a built job graph (the runner API pipeline: ``--dry_run`` job file
or ``Pipeline.to_runner_api()``) for steps whose input is the whole data
set (issue 17, ARCHITECTURE.md "Scale-out").

In the sharded nightly, record data only flows through keyed steps (reads,
routing, the GroupByKeys on bucket keys, the shards).  What may meet in one
place is small: the summed parts (SumParts), the per-bucket counts
(ResolveDeliveries' ``meta``), the shards' failure-file paths
(ComputeShards' ``failures``), the breakdown files' paths (BreakdownByCode)
and the dead letters.  A side input is where
a whole PCollection meets one worker, so every side input must come from
those.  And the singleton steps (Finalize, Publish, RemoveStaging) must
start from ``Start`` (one element), not from a data PCollection.
"""
from __future__ import annotations

import base64

from apache_beam.portability.api import beam_runner_api_pb2

#: Where the main input of a step with side inputs may come from: one element.
SINGLETON_SOURCES = ("Start", "Finalize")
#: (producing step, output tag) a side input may read: small by construction.
SMALL_OUTPUTS = (("SumParts", None), ("ResolveDeliveries", "meta"), ("ComputeShards", "failures"),
                 ("BreakdownByCode", None), ("AllDeadLetters", None))
PARDO = "beam:transform:pardo:v1"


def _producers(transforms: dict) -> dict[str, tuple[str, str]]:
    out = {}
    for t in transforms.values():
        if t.get("subtransforms"):
            continue
        for tag, pcoll in t.get("outputs", {}).items():
            out[pcoll] = (t["uniqueName"], tag)
    return out


def _small(step: str, tag: str) -> bool:
    return any(step.split("/")[0] == name and (want is None or tag == want) for name, want in SMALL_OUTPUTS)


def whole_data_inputs(pipeline: dict) -> list[str]:
    """``"<step> <- <producer>[<tag>]"`` for every side input that may carry
    record data; empty when the graph holds no such step."""
    transforms = pipeline["components"]["transforms"]
    producer = _producers(transforms)
    found = []
    for t in transforms.values():
        if t.get("subtransforms") or t.get("spec", {}).get("urn") != PARDO:
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(base64.b64decode(t["spec"]["payload"]))
        for tag, pcoll in t["inputs"].items():
            step, out = producer[pcoll]
            if tag in payload.side_inputs and not _small(step, out):
                found.append(f"{t['uniqueName']} <- {step}[{out}] (side input)")
            elif (tag not in payload.side_inputs and payload.side_inputs
                  and step.split("/")[0] not in SINGLETON_SOURCES):
                found.append(f"{t['uniqueName']} <- {step}[{out}] (main input of a global step)")
    return sorted(found)


def pipeline_dict(p) -> dict:
    """The runner API form of a built Beam pipeline, as the job file has it."""
    from google.protobuf import json_format

    return json_format.MessageToDict(p.to_runner_api())
