"""Reference data (DATA_CONTRACT.md "Reference data"): regions, institutions,
population and the service-matter catalogue, as CSV files in one directory.

The package ships Ningxia (640000) in ``reference/ningxia``; another province
is another directory with the same four files.  The *local province* is the
one province of regions.csv that has cities below it.  ``load`` checks every
file up front (``reference.validate``) and names the file and line of the
first defect.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from reference import validate
from reference.validate import ReferenceError

__all__ = ["DEFAULT_DIR", "FILES", "SYNTHETIC", "Reference", "ReferenceError", "Region", "load",
           "synthetic"]

DEFAULT_DIR = Path(__file__).resolve().parent / "ningxia"
FILES = ("regions.csv", "institutions.csv", "population.csv", "matters.csv")
# Beside the files of a generated data set: its population.csv is made up (datagen/population.py).
SYNTHETIC = "SYNTHETIC"


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # province | city | county
    parent_code: str
    pooling_code: str


@dataclass(frozen=True)
class Reference:
    directory: Path | str  # a str for gs:// and other remote directories
    regions: dict[str, Region]
    institutions: list[dict]
    population: list[dict]
    matters: list[dict]

    # -- regions -----------------------------------------------------------
    @functools.cached_property
    def province(self) -> Region:
        parents = {r.parent_code for r in self.regions.values() if r.level == "city"}
        provs = [self.regions[c] for c in parents if c in self.regions]
        if len(provs) != 1:
            raise ReferenceError(
                f"{self.directory}/regions.csv: expected cities under exactly one province, found {sorted(parents)}"
            )
        return provs[0]

    @property
    def province_prefix(self) -> str:
        return self.province.code[:2]

    @functools.cached_property
    def counties(self) -> list[Region]:
        return sorted((r for r in self.regions.values() if r.level == "county"), key=lambda r: r.code)

    @functools.cached_property
    def cities(self) -> list[Region]:
        return sorted((r for r in self.regions.values() if r.level == "city"), key=lambda r: r.code)

    @functools.cached_property
    def other_province_prefixes(self) -> frozenset[str]:
        return frozenset(
            r.code[:2] for r in self.regions.values() if r.level == "province" and r.code[:2] != self.province_prefix
        )

    @functools.cached_property
    def province_prefixes(self) -> frozenset[str]:
        return frozenset(r.code[:2] for r in self.regions.values() if r.level == "province")

    def attribution(self, code: str | None) -> tuple[str | None, str | None, str | None]:
        """(county, pooling region, province) a record with region ``code``
        counts in (INDICATORS.md "Regions"); None where it counts in none."""
        if not code or code[:2] != self.province_prefix:
            return (None, None, None)
        r = self.regions.get(code)
        prov = self.province.code
        if r is None or r.level == "province":
            return (None, None, prov)
        if r.level == "city":
            return (None, r.code, prov)
        return (r.code, r.pooling_code, prov)

    def output_regions(self) -> list[tuple[str, str]]:
        """Every (region_code, region_level) that gets indicator rows."""
        out = [(c.code, "county") for c in self.counties]
        out += [(c.code, "pooling") for c in self.cities]
        out.append((self.province.code, "province"))
        return out

    # -- matters -----------------------------------------------------------
    def applicable_matters(self, region_code: str) -> dict[str, dict]:
        """matter_code -> the most specific matters.csv row applying at a
        region: its own rows, then its pooling region's, the province's, and
        rows without region_code (INDICATORS.md "Catalogue indicators")."""
        r = self.regions.get(region_code)
        chain: list[str] = []
        if r is not None and r.level == "county":
            chain = [r.code, r.pooling_code, self.province.code]
        elif r is not None and r.level == "city":
            chain = [r.code, self.province.code]
        else:
            chain = [self.province.code] if region_code[:2] == self.province_prefix else []
        rank = {code: i for i, code in enumerate(chain)}
        best: dict[str, tuple[int, dict]] = {}
        for m in self.matters:
            rc = m.get("region_code") or ""
            if rc and rc not in rank:
                continue
            score = rank[rc] if rc else len(chain)
            if m["matter_code"] not in best or score < best[m["matter_code"]][0]:
                best[m["matter_code"]] = (score, m)
        return {k: v[1] for k, v in sorted(best.items())}


@functools.cache
def load(directory: str | Path | None = None) -> Reference:
    """Reads and checks the four files (``validate``): any defect raises
    :class:`ReferenceError` naming the file and line, before any stream is read."""
    d = str(directory) if directory else str(DEFAULT_DIR)
    tables = {name: validate.read(d, name) for name in FILES}
    rows, province = validate.regions(tables["regions.csv"])
    return Reference(
        directory=d if "://" in d else Path(d),
        regions={code: Region(code, r["name"], r["level"], r["parent_code"], r["pooling_code"])
                 for code, r in rows.items()},
        institutions=validate.institutions(tables["institutions.csv"], rows, province),
        population=validate.population(tables["population.csv"], rows, province),
        matters=validate.matters(tables["matters.csv"], rows, province),
    )


def synthetic(directory: str | Path) -> bool:
    """Whether the reference directory is marked as made up (a generated data set's)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(FileSystems.join(str(directory), SYNTHETIC))
