"""Generate a landing directory: the five Avro streams, the reference CSVs
(population.csv made up, marked SYNTHETIC: datagen/population.py), as_of.txt
and truth.json (see datagen/__init__.py for the story)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import reference as reference_data
from datagen import (
    avro_out,
    contribution,
    defects,
    delivery,
    enrolment,
    filing,
    people,
    population,
    settlement_list,
    settlement_versions,
    truth,
)
from datagen import timebase as tb
from datagen.context import Context
from datagen.settlement import SettlementGenerator

DEFAULT_SEED = 1
DEFAULT_PERSONS = 60_000
DEFAULT_MONTHS = "2022-01..2023-12"


def _clear(out: Path) -> None:
    """Remove what an earlier run wrote here (and nothing else)."""
    for stream in delivery.STREAMS:
        for f in (out / stream).glob("*.avro"):
            f.unlink()
    for name in ("truth.json", "as_of.txt"):
        (out / name).unlink(missing_ok=True)
    for f in (out / "reference").glob("*.csv"):
        f.unlink()
    (out / "reference" / reference_data.SYNTHETIC).unlink(missing_ok=True)


def generate(out: str | Path, seed: int = DEFAULT_SEED, persons: int = DEFAULT_PERSONS,
             months: str = DEFAULT_MONTHS, defect_rate: float = 1.0,
             console: Console | None = None) -> dict:
    """Write the data set to ``out``; returns truth.json's content."""
    if persons < 50:
        raise ValueError("--persons must be at least 50")
    if defect_rate < 0:
        raise ValueError("--defect-rate must be >= 0")
    out = Path(out)
    console = console or Console(stderr=True)
    ref = reference_data.load(reference_data.DEFAULT_DIR)
    ctx = Context(seed=seed, persons=persons, months=tb.parse_months(months),
                  defect_rate=defect_rate, ref=ref)
    started = time.perf_counter()
    columns = (TextColumn("{task.description:<34}"), BarColumn(), TextColumn("{task.fields[n]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        def step(label):
            return progress.add_task(label, total=1, n="")

        def done(task, n=""):
            progress.update(task, completed=1, n=str(n))

        t = step("people")
        residents, visitors = people.build(ctx)
        registered = population.registered(ctx, residents)  # before anyone moves
        done(t, f"{len(residents):,} residents, {len(visitors):,} visitors")

        t = step("enrolment")
        enrol = enrolment.generate(ctx, residents)
        enrol_edges = enrolment.boundary_cases(ctx, enrol)
        enrol_corrections = enrolment.add_corrections(ctx, enrol)
        done(t, f"{len(enrol):,}")

        t = step("contribution")
        contrib = contribution.generate(ctx, residents)
        done(t, f"{len(contrib):,}")

        t = step("settlement")
        sg = SettlementGenerator(ctx)
        sg.generate(residents, visitors)
        settlement_versions.add_versions(sg)
        done(t, f"{len(sg.records):,}")

        t = step("settlement_list")
        lists, lists_after = settlement_list.generate(ctx, sg.records)
        done(t, f"{len(lists):,}")

        t = step("filing")
        filings, filings_after = filing.generate(ctx)
        done(t, f"{len(filings):,}")

        t = step("defects and delivery")
        streams = {"enrolment": enrol, "contribution": contrib, "settlement": sg.records,
                   "settlement_list": lists, "filing": filings}
        defects.inject(ctx, streams)
        plan = delivery.plan(ctx, streams)
        done(t, f"{len(plan.files)} files")

        out.mkdir(parents=True, exist_ok=True)
        _clear(out)
        total = sum(len(f.records) for f in plan.files)
        t = progress.add_task("writing Avro", total=total, n="")
        sizes = {}
        for f in plan.files:
            sizes[f.path] = avro_out.write(out, seed, f)
            progress.update(t, advance=len(f.records), n=f.path)
        progress.update(t, n=f"{total:,} records")

        (out / "reference").mkdir(exist_ok=True)
        for name in reference_data.FILES:
            shutil.copyfile(ref.directory / name, out / "reference" / name)
        population.write(out / "reference", registered, len(residents), seed)
        (out / "as_of.txt").write_text(tb.iso_beijing(ctx.as_of) + "\n", encoding="utf-8")

        t = step("truth.json")
        meta = {
            "generator": {"seed": seed, "persons": persons, "months": months,
                          "defect_rate": defect_rate},
            "enrolment_corrections": enrol_corrections,
            "settlement_corrections": sg.corrections,
            "reversals": sg.reversals,
            "after_as_of": {"settlement": sg.after_as_of, "settlement_list": lists_after,
                            "filing": filings_after},
            "edge_cases": {"e01_e07_enrolled_on_birth_day_before_0800_beijing": enrol_edges,
                           **sg.edges},
        }
        result = truth.build(ctx, plan, sizes, meta)
        (out / "truth.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                        encoding="utf-8")
        done(t)
    elapsed = time.perf_counter() - started
    console.print(f"[green]wrote[/] {total:,} records in {len(plan.files)} files to {out} "
                  f"in {elapsed:.1f} s (as_of {result['as_of']})")
    return result
