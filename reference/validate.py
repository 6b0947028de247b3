"""Reads and checks the four reference CSVs before a run reads any stream.

Reference data steers every figure: a county without pooling_code gives NULL
pooling rows, a repeated code silently replaces the row before it.  So each
file is checked whole, up front, and the first defect stops the run with one
line naming the file and line (``regions.csv line 12: duplicate code 640104
(first on line 5)``) as a :class:`ReferenceError`, a ``UsageError``: exit
status 2.  The checks follow DATA_CONTRACT.md "Reference data":

* encoding: UTF-8 with or without BOM, else GB18030 (GBK is a subset);
* CSV: strict quoting, one field per header column, every required column;
* keys unique: region code, fixmedins_code, (county_code, year),
  (matter_code, region_code);
* hierarchy province > city > county: a city's parent is a province, a
  county's parent and pooling region (统筹地区) are cities, all of one local
  province, each code within its province's two-digit prefix;
* codes that exist: institutions' admdvs, population's county_code and
  matters' region_code are regions of the local province.

Files are read through Beam's FileSystems, so ``gs://`` directories work.
"""
from __future__ import annotations

import csv
import io
import re

from apache_beam.io.filesystems import FileSystems

from pipelines.errors import UsageError

LEVELS = ("province", "city", "county")
CODE = re.compile(r"\d{6}")
# Required columns (value required too unless listed in OPTIONAL_VALUES).
COLUMNS = {
    "regions.csv": ("code", "name", "level", "parent_code", "pooling_code"),
    "institutions.csv": ("fixmedins_code", "name", "admdvs", "kind", "grade"),
    "population.csv": ("county_code", "year", "registered_population"),
    "matters.csv": ("matter_code", "name", "online_capable", "statutory_working_days",
                    "promised_working_days"),
}
OPTIONAL_VALUES = {"parent_code", "pooling_code", "grade", "region_code"}


class ReferenceError(UsageError):
    """Reference data that cannot be used: the run stops before reading streams."""


class Table:
    """One reference CSV: its path, and (line, row) pairs with stripped values."""

    def __init__(self, path: str, rows: list[tuple[int, dict]]):
        self.path, self.rows = path, rows

    def error(self, line: int | None, message: str) -> ReferenceError:
        where = f"{self.path} line {line}" if line else self.path
        return ReferenceError(f"{where}: {message}")


# -- reading -----------------------------------------------------------------

def decode(path: str, data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else GB18030; both strict."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as utf8:
        try:
            return data.decode("gb18030").removeprefix("\ufeff")
        except UnicodeDecodeError as gb:
            # The decoder that got further is the one the file was meant to be in.
            pos = max(utf8.start, gb.start)
            line = data.count(b"\n", 0, pos) + 1
            raise ReferenceError(
                f"{path} line {line}: byte {data[pos:pos + 1].hex()} is neither UTF-8 nor GB18030 "
                "— save the file as UTF-8") from None


def read(directory: str, name: str) -> Table:
    path = FileSystems.join(directory, name)
    if not FileSystems.exists(path):
        raise ReferenceError(f"{path}: reference file missing — pass --reference DIR holding "
                             "regions.csv, institutions.csv, population.csv and matters.csv")
    with FileSystems.open(path) as fh:
        text = decode(path, fh.read())
    table = Table(path, [])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            values = [f.strip() for f in fields]
            if not any(values):  # blank lines, and Excel's trailing ",,,,"
                continue
            if header is None:
                header = _header(table, line, values, name)
                continue
            if len(values) != len(header):
                raise table.error(line, f"{len(values)} fields where the header has {len(header)} "
                                        "— quote values that contain commas")
            table.rows.append((line, dict(zip(header, values))))
    except csv.Error as exc:
        raise table.error(start, f"bad CSV quoting ({exc}) — quote a whole value and double "
                                 "any quote inside it") from None
    if header is None:
        raise table.error(1, f"empty file — expected a header {','.join(COLUMNS[name])}")
    return table


def _header(table: Table, line: int, names: list[str], name: str) -> list[str]:
    seen = set()
    for n in names:
        if n in seen:
            raise table.error(line, f"column {n} appears twice in the header")
        seen.add(n)
    missing = [c for c in COLUMNS[name] if c not in seen]
    if missing:
        raise table.error(line, f"missing column {', '.join(missing)} (header: {','.join(names)}; "
                                f"expected {','.join(COLUMNS[name])})")
    return names


def _require(table: Table, line: int, row: dict, columns) -> None:
    for c in columns:
        if c not in OPTIONAL_VALUES and not row[c]:
            raise table.error(line, f"empty {c}")


def _unique(table: Table, key_name: str, key, line: int, seen: dict) -> None:
    if key in seen:
        raise table.error(line, f"duplicate {key_name} {key} (first on line {seen[key]})")
    seen[key] = line


def _whole(table: Table, line: int, row: dict, column: str) -> int:
    v = row[column]
    if not v.isdigit():
        raise table.error(line, f"{column} must be a whole number >= 0, got {v!r}")
    return int(v)


# -- checks ------------------------------------------------------------------

def regions(t: Table) -> tuple[dict[str, dict], str]:
    """Rows by code, and the local province's code (the one province with cities)."""
    by_code: dict[str, dict] = {}
    lines: dict[str, int] = {}
    for line, r in t.rows:
        _require(t, line, r, COLUMNS["regions.csv"])
        if not CODE.fullmatch(r["code"]):
            raise t.error(line, f"code must be 6 digits, got {r['code']!r}")
        if r["level"] not in LEVELS:
            raise t.error(line, f"level must be one of {', '.join(LEVELS)}, got {r['level']!r}")
        _unique(t, "code", r["code"], line, lines)
        by_code[r["code"]] = r

    def level_of(code: str) -> str:
        return by_code[code]["level"] if code in by_code else "unknown"

    local: dict[str, int] = {}  # province code -> line of its first city
    for line, r in t.rows:
        code, level, parent, pooling = r["code"], r["level"], r["parent_code"], r["pooling_code"]
        if level == "province":
            if not code.endswith("0000"):
                raise t.error(line, f"province code {code} must end in 0000")
            if parent or pooling:
                raise t.error(line, f"province {code} must have no parent_code or pooling_code")
            continue
        want = "province" if level == "city" else "city"
        if not parent:
            raise t.error(line, f"{level} {code} has no parent_code (a {want})")
        if parent not in by_code:
            raise t.error(line, f"{level} {code}: parent_code {parent} is not a code in regions.csv")
        if level_of(parent) != want:
            raise t.error(line, f"{level} {code}: parent_code {parent} is a {level_of(parent)}, "
                                f"expected a {want} (province > city > county)")
        if code[:2] != parent[:2]:
            raise t.error(line, f"{level} {code} is not in the province of its parent {parent}")
        if level == "city":
            if pooling and pooling != code:
                raise t.error(line, f"city {code}: pooling_code {pooling} must be empty or the "
                                    "city itself (a city is its own pooling region)")
            local.setdefault(parent, line)
            continue
        if not pooling:
            raise t.error(line, f"county {code} has no pooling_code (its 统筹地区, a city)")
        if pooling not in by_code:
            raise t.error(line, f"county {code}: pooling_code {pooling} is not a code in regions.csv")
        if level_of(pooling) != "city" or pooling[:2] != code[:2]:
            raise t.error(line, f"county {code}: pooling_code {pooling} is a {level_of(pooling)}"
                                f"{'' if pooling[:2] == code[:2] else ' of another province'}, "
                                "expected a city of its province")
    if not local:
        raise t.error(None, "no city rows — list the local province's cities and counties")
    if len(local) > 1:
        (first, _), (second, line) = sorted(local.items(), key=lambda kv: kv[1])[:2]
        raise t.error(line, f"cities under a second province {second} (the first, {first}, "
                            f"has cities from line {local[first]}) — one directory is one province")
    return by_code, next(iter(local))


def _local_region(t: Table, line: int, column: str, code: str, by_code: dict, province: str,
                  levels: tuple[str, ...]) -> None:
    r = by_code.get(code)
    if r is None:
        raise t.error(line, f"{column} {code} is not a code in regions.csv")
    if r["level"] not in levels or code[:2] != province[:2]:
        where = "" if code[:2] == province[:2] else f" outside the local province {province}"
        raise t.error(line, f"{column} {code} is a {r['level']}{where}, expected a "
                            f"{' or '.join(levels)} of {province}")


def institutions(t: Table, by_code: dict, province: str) -> list[dict]:
    seen: dict[str, int] = {}
    for line, r in t.rows:
        _require(t, line, r, COLUMNS["institutions.csv"])
        _unique(t, "fixmedins_code", r["fixmedins_code"], line, seen)
        # DATA_CONTRACT says a county; a city code is a 市本级 institution.
        _local_region(t, line, "admdvs", r["admdvs"], by_code, province, ("county", "city"))
        if r["kind"] not in ("H", "P"):
            raise t.error(line, f"kind must be H (hospital) or P (pharmacy), got {r['kind']!r}")
    return [r for _, r in t.rows]


def population(t: Table, by_code: dict, province: str) -> list[dict]:
    seen: dict[tuple, int] = {}
    for line, r in t.rows:
        _require(t, line, r, COLUMNS["population.csv"])
        _local_region(t, line, "county_code", r["county_code"], by_code, province, ("county",))
        r["year"] = _whole(t, line, r, "year")
        r["registered_population"] = _whole(t, line, r, "registered_population")
        _unique(t, "(county_code, year)", f"({r['county_code']}, {r['year']})", line, seen)
    return [r for _, r in t.rows]


def matters(t: Table, by_code: dict, province: str) -> list[dict]:
    seen: dict[str, int] = {}
    for line, m in t.rows:
        _require(t, line, m, COLUMNS["matters.csv"])
        rc = m.get("region_code") or ""
        if rc:
            _local_region(t, line, "region_code", rc, by_code, province, LEVELS)
        _unique(t, "matter_code", f"{m['matter_code']} for region_code {rc or '(all)'}",
                line, seen)
        m["statutory_working_days"] = _whole(t, line, m, "statutory_working_days")
        m["promised_working_days"] = _whole(t, line, m, "promised_working_days")
        if m["promised_working_days"] > m["statutory_working_days"]:
            raise t.error(line, f"matter {m['matter_code']} (region {rc or 'all'}) promises "
                                f"{m['promised_working_days']} working days, more than its "
                                f"statutory {m['statutory_working_days']}")
        flag = m["online_capable"].lower()
        if flag not in ("true", "false"):
            raise t.error(line, f"online_capable must be true or false, got {m['online_capable']!r}")
        m["online_capable"] = flag == "true"
        m["region_code"] = rc or None
    return [m for _, m in t.rows]
