"""Reference data (DATA_CONTRACT.md "Reference data"): regions, institutions,
population and the service-matter catalogue, as CSV files in one directory.

The package ships Ningxia (640000) in ``reference/ningxia``; another province
is another directory with the same four files.  The *local province* is the
one province of regions.csv that has cities below it.
"""
from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent / "ningxia"
FILES = ("regions.csv", "institutions.csv", "population.csv", "matters.csv")


class ReferenceError(ValueError):
    """Reference data that cannot be used: the run stops before reading streams."""


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # province | city | county
    parent_code: str
    pooling_code: str


@dataclass(frozen=True)
class Reference:
    directory: Path
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


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        raise ReferenceError(f"reference file missing: {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        return [{k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _check_matters(path: Path, rows: list[dict]) -> list[dict]:
    seen: set[tuple[str, str]] = set()
    for i, m in enumerate(rows, start=2):  # line 1 is the header
        key = (m["matter_code"], m.get("region_code") or "")
        if key in seen:
            raise ReferenceError(f"{path}:{i}: matter_code {key[0]} repeated for region_code {key[1]!r}")
        seen.add(key)
        try:
            m["statutory_working_days"] = int(m["statutory_working_days"])
            m["promised_working_days"] = int(m["promised_working_days"])
        except (KeyError, ValueError) as exc:
            raise ReferenceError(f"{path}:{i}: working days must be whole numbers: {m}") from exc
        if m["promised_working_days"] > m["statutory_working_days"]:
            raise ReferenceError(
                f"{path}:{i}: matter {m['matter_code']} (region {m.get('region_code') or 'all'}) promises "
                f"{m['promised_working_days']} working days, more than its statutory {m['statutory_working_days']}"
            )
        flag = str(m.get("online_capable", "")).lower()
        if flag not in ("true", "false"):
            raise ReferenceError(f"{path}:{i}: online_capable must be true or false, got {flag!r}")
        m["online_capable"] = flag == "true"
        m["region_code"] = m.get("region_code") or None
    return rows


@functools.cache
def load(directory: str | Path | None = None) -> Reference:
    d = Path(directory) if directory else DEFAULT_DIR
    regions = {
        r["code"]: Region(r["code"], r["name"], r["level"], r.get("parent_code") or "", r.get("pooling_code") or "")
        for r in _read_csv(d / "regions.csv")
    }
    population = _read_csv(d / "population.csv")
    for p in population:
        p["year"] = int(p["year"])
        p["registered_population"] = int(p["registered_population"])
    ref = Reference(
        directory=d,
        regions=regions,
        institutions=_read_csv(d / "institutions.csv"),
        population=population,
        matters=_check_matters(d / "matters.csv", _read_csv(d / "matters.csv")),
    )
    ref.province  # noqa: B018 - validates the hierarchy early
    return ref
