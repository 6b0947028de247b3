"""The generated reference's population.csv: the generated residents, not
Ningxia's real registered population.

I09 (参保率) divides enrolled persons by the registered population.  Against
the real 6.7 million, tens of thousands of synthetic persons make I09 about
1 %, a false alarm.  So the data set's registered population is its own
residents: per county (where they lived when the window opened) and year,
those born by the end of that year.  I09 then measures the generator's
coverage like the real one measures the province's.  The (county, year)
keys are those of the shipped file; ``SYNTHETIC`` beside it says the figures
are made up, and the nightly run records that for the report.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from datagen import timebase as tb
from datagen.context import Context
from datagen.people import Person
from reference import SYNTHETIC

COLUMNS = ("county_code", "year", "registered_population")


def registered(ctx: Context, residents: list[Person]) -> list[dict]:
    """(county_code, year, registered_population) rows, one per key of the real
    file; call before enrolment moves anyone to another county."""
    births = Counter((p.county, tb.to_date(p.brdy).year) for p in residents)
    rows = []
    for real in ctx.ref.population:
        county, year = real["county_code"], real["year"]
        rows.append({"county_code": county, "year": year,
                     "registered_population": sum(n for (c, y), n in births.items()
                                                  if c == county and y <= year)})
    return rows


def write(reference_dir: Path, rows: list[dict], residents: int, seed: int) -> None:
    """population.csv and the SYNTHETIC marker saying what is made up."""
    with (reference_dir / "population.csv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        out.writeheader()
        out.writerows(rows)
    (reference_dir / SYNTHETIC).write_text(
        "population.csv is synthetic (demo): registered_population counts the residents "
        f"`yibao generate --seed {seed} --persons {residents}` made up, per county (where "
        "they lived when the window opened) and year (born by its end).\n"
        "regions.csv, institutions.csv and matters.csv are the shipped Ningxia reference.\n",
        encoding="utf-8")
