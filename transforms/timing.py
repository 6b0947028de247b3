"""Worker time per step of the nightly, as Beam counters: the launcher
reports them (``stage_seconds`` in the run summary) and the Dataflow
scaling model is built from them (docs/PERFORMANCE.md "Scale-out")."""
from __future__ import annotations

import time
from collections.abc import Iterator

from apache_beam.metrics import Metrics

#: Beam metrics namespace of the steps' worker-milliseconds.
NAMESPACE = "yibao.stages"


def timed(step: str, outputs: Iterator) -> Iterator:
    """Yields ``outputs``, adding the time spent producing them — not the
    time the fused steps downstream spend on each — to ``step``'s counter
    (milliseconds, summed over workers)."""
    counter = Metrics.counter(NAMESPACE, step)
    span = Metrics.distribution(NAMESPACE, f"{step}.span")  # epoch ms of first start, last end
    span.update(int(time.time() * 1000))
    spent = 0.0
    try:
        while True:
            start = time.perf_counter()
            try:
                item = next(outputs)
            except StopIteration:
                spent += time.perf_counter() - start
                return
            spent += time.perf_counter() - start
            yield item
    finally:
        counter.inc(int(spent * 1000))
        span.update(int(time.time() * 1000))


def stage_seconds(result) -> dict[str, dict[str, float]]:
    """Per step of a finished run: ``worker`` seconds (summed over workers)
    and ``wall`` seconds (first start to last end on any worker); empty if
    the runner has no metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # noqa: BLE001 - a runner without metrics: nothing to report
        return {}
    # One metric name is reported once per Beam step (Decode runs as a step per
    # stream): worker time adds up; the span is the earliest start to the latest end.
    worker: dict[str, float] = {}
    spans: dict[str, tuple[int, int]] = {}
    for c in found["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        worker[c.key.metric.name] = worker.get(c.key.metric.name, 0.0) + value / 1000
    for d in found["distributions"]:
        value = d.committed if d.committed is not None else d.attempted
        if value is None or not value.count:
            continue
        step = d.key.metric.name.removesuffix(".span")
        low, high = spans.get(step, (value.min, value.max))
        spans[step] = (min(low, value.min), max(high, value.max))
    out: dict[str, dict[str, float]] = {}
    for step in sorted(set(worker) | set(spans)):
        out[step] = {}
        if step in worker:
            out[step]["worker"] = round(worker[step], 3)
        if step in spans:
            out[step]["wall"] = round((spans[step][1] - spans[step][0]) / 1000, 3)
    return out
