"""Issue 14 item 4: "Reference data is trusted blindly. Missing `pooling_code`
→ NULL pooling rows; a duplicate region code → silently different figures
(last row wins); a BOM, GBK/GB18030 encoding or bad quoting → raw
tracebacks, some after the whole compute."

Each test writes the shipped Ningxia reference with one hostile change and
asserts the one-line message names the file and the line of the defect.
"""
from __future__ import annotations

import pytest

import reference
from pipelines import cli
from pipelines.errors import UsageError
from tests.builders import copy_reference, settlement, utc, write_avro
from warehouse.duckdb_store import connect


def lines(ref_dir, name) -> list[str]:
    return (ref_dir / name).read_text(encoding="utf-8").splitlines()


def line_of(ref_dir, name, prefix: str) -> int:
    """1-based line number of the row starting with ``prefix``."""
    return next(i for i, t in enumerate(lines(ref_dir, name), start=1) if t.startswith(prefix))


def edit(ref_dir, name, prefix: str, fields: dict[int, str] | None = None, raw: str | None = None) -> int:
    """Replaces fields (by index) of the row starting with ``prefix``, or the
    whole row by ``raw``; returns its line number."""
    text = lines(ref_dir, name)
    n = line_of(ref_dir, name, prefix)
    if raw is None:
        cells = text[n - 1].split(",")
        for i, v in fields.items():
            cells[i] = v
        raw = ",".join(cells)
    text[n - 1] = raw
    (ref_dir / name).write_text("\n".join(text) + "\n", encoding="utf-8")
    return n


def append(ref_dir, name, row: str) -> int:
    text = lines(ref_dir, name) + [row]
    (ref_dir / name).write_text("\n".join(text) + "\n", encoding="utf-8")
    return len(text)


def load_error(ref_dir) -> str:
    with pytest.raises(reference.ReferenceError) as info:
        reference.load(ref_dir)
    message = str(info.value)
    assert isinstance(info.value, UsageError)
    assert "\n" not in message
    return message


@pytest.fixture
def ref(tmp_path):
    return copy_reference(tmp_path)


def as_loaded(r: reference.Reference):
    return r.regions, r.institutions, r.population, r.matters


# -- the shipped and generated reference sets load ------------------------------------

def test_shipped_reference_loads():
    r = reference.load()
    assert r.province.code == "640000"
    assert len(r.counties) == 22 and len(r.cities) == 5
    assert all(c.pooling_code for c in r.counties)


def test_generated_reference_loads(tmp_path):
    from datagen.generate import generate

    generate(tmp_path / "gen", persons=50, months="2023-01..2023-01")
    gen, shipped = as_loaded(reference.load(tmp_path / "gen" / "reference")), as_loaded(reference.load())
    # Everything but the population, which counts the generated residents (same keys).
    assert gen[:2] == shipped[:2] and gen[3] == shipped[3]
    def keys(rows):
        return sorted((r["county_code"], r["year"]) for r in rows)

    assert keys(gen[2]) == keys(shipped[2])


# -- one hostile file per defect -------------------------------------------------------

def test_missing_column(ref):
    text = [",".join(t.split(",")[:4]) for t in lines(ref, "regions.csv")]  # drop pooling_code
    (ref / "regions.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    assert load_error(ref).startswith(f"{ref}/regions.csv line 1: missing column pooling_code ")


def test_missing_pooling_code_value(ref):
    """"Missing `pooling_code` → NULL pooling rows": now a stop at the row."""
    n = edit(ref, "regions.csv", "640105,", {4: ""})
    assert load_error(ref) == (f"{ref}/regions.csv line {n}: county 640105 has no pooling_code "
                               "(its 统筹地区, a city)")


def test_duplicate_region_code(ref):
    """"a duplicate region code → silently different figures (last row wins)"."""
    first = line_of(ref, "regions.csv", "640104,")
    n = append(ref, "regions.csv", "640104,兴庆区,county,640100,640200")
    assert load_error(ref) == f"{ref}/regions.csv line {n}: duplicate code 640104 (first on line {first})"


@pytest.mark.parametrize("name, prefix, key", [
    ("institutions.csv", "H64010400001,", "fixmedins_code H64010400001"),
    ("population.csv", "640105,2023,", "(county_code, year) (640105, 2023)"),
    ("matters.csv", "TRANSFER,基本医疗保险关系转移接续,", "matter_code TRANSFER for region_code (all)"),
    ("matters.csv", "TRANSFER,基本医疗保险关系转移接续（银川", "matter_code TRANSFER for region_code 640100"),
])
def test_duplicate_keys(ref, name, prefix, key):
    first = line_of(ref, name, prefix)
    n = append(ref, name, lines(ref, name)[first - 1])
    assert load_error(ref) == f"{ref}/{name} line {n}: duplicate {key} (first on line {first})"


def test_unknown_parent_code(ref):
    n = edit(ref, "regions.csv", "640105,", {3: "640900"})
    assert load_error(ref) == (f"{ref}/regions.csv line {n}: county 640105: parent_code 640900 "
                               "is not a code in regions.csv")


def test_institution_in_unknown_region(ref):
    n = edit(ref, "institutions.csv", "H64010400002,", {2: "640199"})
    assert load_error(ref) == (f"{ref}/institutions.csv line {n}: admdvs 640199 is not a code "
                               "in regions.csv")


@pytest.mark.parametrize("name, prefix, fields, message", [
    ("population.csv", "640105,2022,", {0: "640100"},
     "county_code 640100 is a city, expected a county of 640000"),
    ("matters.csv", "LTC_ASSESS,", {5: "640299"}, "region_code 640299 is not a code in regions.csv"),
    ("matters.csv", "LTC_ASSESS,", {5: "650000"},
     "region_code 650000 is a province outside the local province 640000, expected a province "
     "or city or county of 640000"),
    ("institutions.csv", "H64010400002,", {3: "X"}, "kind must be H (hospital) or P (pharmacy), got 'X'"),
    ("population.csv", "640105,2022,", {2: "-5"}, "registered_population must be a whole number >= 0, got '-5'"),
])
def test_codes_that_do_not_fit(ref, name, prefix, fields, message):
    n = edit(ref, name, prefix, fields)
    assert load_error(ref) == f"{ref}/{name} line {n}: {message}"


@pytest.mark.parametrize("prefix, fields, message", [
    ("640105,", {3: "640104"}, "county 640105: parent_code 640104 is a county, expected a city "
                               "(province > city > county)"),
    ("640200,", {3: "640100"}, "city 640200: parent_code 640100 is a city, expected a province "
                               "(province > city > county)"),
    ("640105,", {4: "640000"}, "county 640105: pooling_code 640000 is a province, expected a city "
                               "of its province"),
    ("640200,", {4: "640100"}, "city 640200: pooling_code 640100 must be empty or the city itself "
                               "(a city is its own pooling region)"),
    ("640000,", {3: "640100"}, "province 640000 must have no parent_code or pooling_code"),
    ("640105,", {2: "district"}, "level must be one of province, city, county, got 'district'"),
    ("640105,", {0: "64010"}, "code must be 6 digits, got '64010'"),
])
def test_levels_inconsistent_with_the_hierarchy(ref, prefix, fields, message):
    n = edit(ref, "regions.csv", prefix, fields)
    assert load_error(ref) == f"{ref}/regions.csv line {n}: {message}"


def test_cities_of_a_second_province(ref):
    first = line_of(ref, "regions.csv", "640100,")
    n = append(ref, "regions.csv", "650100,乌鲁木齐市,city,650000,650100")
    assert load_error(ref) == (f"{ref}/regions.csv line {n}: cities under a second province 650000 "
                               f"(the first, 640000, has cities from line {first}) — one directory "
                               "is one province")


def test_bom_prefixed_utf8_is_accepted(ref):
    for name in reference.FILES:
        (ref / name).write_bytes(b"\xef\xbb\xbf" + (ref / name).read_bytes())
    assert as_loaded(reference.load(ref)) == as_loaded(reference.load())


def test_gb18030_is_accepted_with_identical_result(ref):
    for name in reference.FILES:
        (ref / name).write_bytes((ref / name).read_text(encoding="utf-8").encode("gb18030"))
    assert (ref / "regions.csv").read_bytes() != (reference.DEFAULT_DIR / "regions.csv").read_bytes()
    assert as_loaded(reference.load(ref)) == as_loaded(reference.load())


def test_undecodable_bytes_are_rejected(ref):
    n = line_of(ref, "institutions.csv", "H64010400003,")
    text = (ref / "institutions.csv").read_bytes().split(b"\n")
    text[n - 1] = text[n - 1].replace("宁夏".encode(), b"\xff\xfe", 1)
    (ref / "institutions.csv").write_bytes(b"\n".join(text))
    assert load_error(ref) == (f"{ref}/institutions.csv line {n}: byte ff is neither UTF-8 nor "
                               "GB18030 — save the file as UTF-8")


@pytest.mark.parametrize("raw, message", [
    ('640105,"西夏"区,county,640100,640100', "bad CSV quoting (',' expected after '\"')"),
    ('640105,西夏区,county,640100,640100,', "6 fields where the header has 5"),
])
def test_bad_quoting_is_rejected(ref, raw, message):
    n = edit(ref, "regions.csv", "640105,", raw=raw)
    assert load_error(ref).startswith(f"{ref}/regions.csv line {n}: {message} — ")


def test_unclosed_quote_is_reported_where_it_opens(ref):
    n = edit(ref, "regions.csv", "640105,", raw='640105,"西夏区,county,640100,640100')
    assert load_error(ref).startswith(f"{ref}/regions.csv line {n}: bad CSV quoting (unexpected end of data)")


def test_missing_file(ref):
    (ref / "population.csv").unlink()
    assert load_error(ref).startswith(f"{ref}/population.csv: reference file missing — ")


# -- the command ----------------------------------------------------------------------

def test_nightly_with_bad_reference_exits_2_before_reading_streams(tmp_path, capsys, monkeypatch):
    """The operator sees one line and status 2; the run is recorded as failed
    with the reason, and no stream was read (lead's wiring in pipelines/nightly.py)."""
    monkeypatch.setenv("YIBAO_PSEUDONYM_KEY", "k" * 40)  # a run that would otherwise start
    root = tmp_path / "landing"
    ref = copy_reference(root)
    n = edit(ref, "regions.csv", "640105,", {4: ""})
    write_avro(root / "settlement" / "a.avro", "settlement", [settlement("s1", utc(2023, 1, 10, 2))])
    warehouse = tmp_path / "x.duckdb"
    status = cli.main(["nightly", "--input", str(root), "--warehouse", f"duckdb:///{warehouse}",
                       "--as-of", "2023-03-31T23:59:59+08:00", "--months", "2023-01..2023-03",
                       "--no_alerts"])
    err = capsys.readouterr().err.strip().splitlines()
    reason = f"{ref}/regions.csv line {n}: county 640105 has no pooling_code (its 统筹地区, a city)"
    assert (status, err) == (2, [f"yibao nightly: {reason}"])
    con = connect(str(warehouse), read_only=True)
    try:
        runs = con.execute("SELECT status, error FROM pipeline_runs").fetchall()
        assert len(runs) == 1 and runs[0][0] == "failed" and reason in runs[0][1]
        assert con.execute("SELECT count(*) FROM pipeline_run_streams").fetchone() == (0,)
    finally:
        con.close()

