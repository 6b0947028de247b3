"""Issue 16 item 6: "every night reads the whole landing prefix, all years".
A landing partitioned by arrival date (``<stream>/dt=YYYY-MM-DD/``) is read
only from the earliest partition the run's months can need
(pipelines/partitions.py), and that pruning changes no figure."""
from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from pathlib import Path

import fastavro
import pytest
from rich.console import Console

import schemas
from datagen.generate import generate
from pipelines import checks, nightly, partitions
from tests.test_bigquery import VOLATILE, _select, duck_rows
from transforms.timeutil import business_date

FIGURES = ("indicator_values", "quality_rule_results")


def partition_by_arrival(flat: Path, out: Path) -> dict[str, set[str]]:
    """The flat landing re-laid by arrival day: each file lands, whole and under
    its own name, on the business day of its latest event (a file arrives after
    the events in it). Returns the partitions per stream."""
    shutil.copytree(flat / "reference", out / "reference")
    made: dict[str, set[str]] = {}
    for stream in schemas.STREAM_NAMES:
        for path in sorted((flat / stream).glob("*.avro")):
            try:
                with path.open("rb") as fh:
                    last = max(business_date(r["event_time"]) for r in fastavro.reader(fh))
            except (ValueError, EOFError):  # the generator's damaged deliveries: end of their month
                first = dt.date.fromisoformat(path.name[:7] + "-01")
                last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            part = f"dt={last:%Y-%m-%d}"
            (out / stream / part).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / stream / part / path.name)
            made.setdefault(stream, set()).add(part)
    return made


@pytest.fixture(scope="module")
def landings(tmp_path_factory):
    work = tmp_path_factory.mktemp("partitions")
    generate(work / "flat", persons=200, months="2021-09..2023-03",
             console=Console(file=io.StringIO()))
    made = partition_by_arrival(work / "flat", work / "by_day")
    as_of = (work / "flat" / "as_of.txt").read_text().strip()
    return work, made, as_of


def _run(work: Path, landing: str, name: str, as_of: str, *extra: str) -> tuple[dict, dict]:
    wh = work / f"{name}.duckdb"
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        nightly.run(["--input", str(work / landing), "--warehouse", f"duckdb:///{wh}",
                     "--as-of", as_of, "--months", "2023-01..2023-03", "--staging",
                     str(work / "staging"), "--quarantine", str(work / f"q-{name}"),
                     "--no_alerts", "--json", *extra])
    figures = {t: duck_rows(wh, _select(t, VOLATILE)) for t in FIGURES}
    return figures, json.loads(out.getvalue().splitlines()[-1])


def test_partitions_needed_by_a_run():
    months = [dt.date(2023, m, 1) for m in range(1, 7)]
    assert partitions.earliest_needed("enrolment", months) is None  # month-end snapshots: all history
    for stream in ("contribution", "settlement", "settlement_list", "filing"):
        # C01's same period one year earlier, from January; one day of slack for UTC-named days.
        assert partitions.earliest_needed(stream, months) == dt.date(2021, 12, 31)
    assert partitions.partition_day("gs://b/in/settlement/dt=2023-02-30") is None
    assert partitions.partition_day("dt=2023-02-28") == dt.date(2023, 2, 28)


def test_pruning_changes_no_figure(landings):
    work, made, as_of = landings
    pruned, pruned_summary = _run(work, "by_day", "pruned", as_of)
    full, full_summary = _run(work, "by_day", "full", as_of, "--all_partitions")
    flat, _ = _run(work, "flat", "flat", as_of)
    for table in FIGURES:
        assert pruned[table] == full[table], table
        assert pruned[table] == flat[table], table  # the flat layout keeps working, same figures
        assert pruned[table], table
    # Not vacuous: 2021's partitions were there, and left out except for enrolment.
    skipped = pruned_summary["partitions_skipped"]
    assert set(skipped) == {"contribution", "settlement", "settlement_list", "filing"} & set(made)
    assert all(n > 0 for n in skipped.values()) and "partitions_skipped" not in full_summary
    read = {s: c["read"] for s, c in pruned_summary["streams"].items()}
    assert read["settlement"] < full_summary["streams"]["settlement"]["read"]
    assert read["enrolment"] == full_summary["streams"]["enrolment"]["read"]


def test_listing_reads_flat_files_and_the_needed_partitions(landings, tmp_path):
    work, _, _ = landings
    root = tmp_path / "mixed"
    (root / "settlement" / "dt=2020-05-01").mkdir(parents=True)
    (root / "settlement" / "dt=2023-05-01").mkdir(parents=True)
    (root / "settlement" / "dt=not-a-day").mkdir(parents=True)
    for rel in ("settlement/flat.avro", "settlement/dt=2020-05-01/old.avro",
                "settlement/dt=2023-05-01/new.avro", "settlement/dt=2023-05-01/notes.txt",
                "settlement/dt=2023-05-01/.partial.avro", "settlement/dt=not-a-day/x.avro"):
        (root / rel).write_bytes(b"")
    listing = checks.list_input(str(root), [dt.date(2023, 1, 1)])
    assert listing.avro["settlement"] == [str(root / "settlement/flat.avro"),
                                          str(root / "settlement/dt=2023-05-01/new.avro")]
    assert listing.skipped_partitions["settlement"] == ["dt=2020-05-01"]
    assert listing.patterns["settlement"] == [str(root / "settlement/*.avro"),
                                              str(root / "settlement/dt=2023-05-01/*.avro")]
    assert str(root / "settlement/dt=2023-05-01/notes.txt") in listing.ignored
    every = checks.list_input(str(root), [dt.date(2023, 1, 1)], all_partitions=True)
    assert str(root / "settlement/dt=2020-05-01/old.avro") in every.avro["settlement"]
