"""The few lines a nightly run ends with (stdout), or one JSON object
(``--json``) for schedulers.

The summary is built inside the job's publish step from what it wrote, then
handed to the launcher as a small JSON file beside the run's staging prefix,
``<staging>/<run_id>.summary.json`` (the job deletes the prefix itself; the
launcher may be another process; on Dataflow a local or gs:// path works
alike through Beam's FileSystems). The launcher deletes it once read.
"""
from __future__ import annotations

import json

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from rich.console import Console
from rich.table import Table


def build(run_id: str, ctx, stream_rows: list[dict], values: list[dict], failures: int,
          records_by_month: dict[str, dict[str, int]], ignored_files: list[str]) -> dict:
    months = [f"{m:%Y-%m}" for m in ctx.months]
    with_data = {m for per in records_by_month.values() for m in per}
    as_of_month = f"{ctx.as_of_date:%Y-%m}"
    last = max(months)
    missed = [v for v in values if v.get("meets_target") is False]
    return {
        "run_id": run_id,
        "status": "succeeded",
        "as_of": ctx.as_of.isoformat(),
        "months": f"{months[0]}..{last}" if len(months) > 1 else months[0],
        "months_without_data": [m for m in months if m not in with_data],
        "as_of_month_without_data": as_of_month in months and as_of_month not in with_data,
        "streams": {r["stream"]: {k: r[k] for k in ("read", "accepted", "duplicates", "dead_lettered")}
                    for r in stream_rows},
        "indicator_rows": len(values),
        "quality_failures": failures,
        "targets_missed": len(missed),
        "targets_missed_last_month": sum(1 for v in missed if v.get("period_type") == "MONTH"
                                         and f"{v['period_start']:%Y-%m}" == last),
        "ignored_files": ignored_files,
    }


def write(path: str, summary: dict) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(json.dumps(summary, ensure_ascii=False).encode("utf-8"))


def read(path: str) -> dict | None:
    """The job's summary, or None when the job did not get to write one."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
            return json.loads(fh.read().decode("utf-8"))
    except Exception:  # noqa: BLE001 - absent: a non-blocking launch, or the job failed first
        return None


def warnings(summary: dict) -> list[str]:
    """What an operator at 02:00 should not miss."""
    out = []
    if summary.get("months_without_data"):
        out.append("no data in any stream for " + ", ".join(summary["months_without_data"])
                   + " (their rows are 0/0: check --as-of and --months)")
    if summary.get("as_of_month_without_data"):
        out.append(f"as_of {summary['as_of']} falls in a month with no data in any stream "
                   "(an as_of of T16:00:00Z is already the next day in Beijing)")
    if summary.get("ignored_files"):
        files = summary["ignored_files"]
        out.append(f"{len(files)} file(s) in stream folders are not *.avro and were not read: "
                   + ", ".join(files[:5]) + (" …" if len(files) > 5 else ""))
    return out


def render(summary: dict, console: Console) -> None:
    table = Table(title=None, box=None, pad_edge=False)
    for col in ("stream", "read", "accepted", "duplicates", "dead-lettered"):
        table.add_column(col, justify="left" if col == "stream" else "right")
    for stream, c in summary["streams"].items():
        table.add_row(stream, *(f"{c[k]:,}" for k in ("read", "accepted", "duplicates", "dead_lettered")))
    console.print(f"nightly run {summary['run_id']} {summary['status']} in "
                  f"{summary.get('elapsed_seconds', 0):.1f} s → {summary.get('warehouse', '')}")
    console.print(f"months {summary['months']}, as_of {summary['as_of']}")
    console.print(table)
    console.print(f"indicator rows {summary['indicator_rows']:,}, quality failures "
                  f"{summary['quality_failures']:,}, targets missed {summary['targets_missed']:,} "
                  f"({summary['targets_missed_last_month']:,} in the last month)")
    if "alerts" in summary:
        console.print(f"alerts: {summary['alerts']}")
    for line in warnings(summary):
        console.print(f"warning: {line}")
