"""The documentation is the repository's own and agrees with the code (issue 15:
"the README points to specifications outside the repository (`../shared/docs/`)").

The catalogue, the suites, the schemas, the reference files and the warehouse
tables are the single sources; docs/*.md must name everything they define,
nothing they do not, and link only to files inside the repository.
"""
from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest

import expectations
import schemas
from transforms.indicators.catalog import CODES
from warehouse.tables import TABLES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = re.compile(r"<!-- BEGIN GENERATED (\S+) -->.*?<!-- END GENERATED \1 -->", re.S)


def _gen_tables():
    spec = importlib.util.spec_from_file_location("gen_tables", DOCS / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def hand_written(text: str) -> str:
    return GENERATED.sub("", text)


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading of the
    same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines))
                if re.match(rf"#{{1,{level}}} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def project_files(pattern: str, skip: frozenset = frozenset()) -> list[Path]:
    """Files of the repository: not the virtualenv, hidden folders, run outputs
    or vendored code."""
    skip = {"var", "vendor", "node_modules", *skip}
    found = list(ROOT.glob(pattern))
    for top in ROOT.iterdir():
        if top.is_dir() and top.name not in skip and not top.name.startswith(".") \
                and not top.name.endswith(".egg-info"):
            found += [p for p in top.rglob(pattern) if not skip & set(p.relative_to(ROOT).parts)]
    return sorted(found)


def markdown_files() -> list[Path]:
    return project_files("*.md")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


# -- generated tables ------------------------------------------------------------

def test_generated_tables_match_the_code():
    """Catalogue, targets, suites and warehouse tables are written into the docs
    by docs/gen_tables.py; a change to the code without a rerun fails here."""
    assert _gen_tables().stale() == [], "run: .venv/bin/python docs/gen_tables.py"


def test_an_indicator_without_a_default_target_is_refused():
    gen = _gen_tables()
    from pipelines.config import Config

    with pytest.raises(ValueError, match="R99 has no default target"):
        gen.target_text("R99", ">=", Config({"targets": {}}))
    assert gen.target_text("I17", ">=", Config({"targets": {"I17": {
        "default": 0.7, "by_year": {2022: 0.3}}}})) == "≥ 70% (2022: 30%)"


def test_every_indicator_family_has_its_page():
    gen = _gen_tables()
    for page in gen.FAMILY_PAGES.values():
        assert (DOCS / "indicators" / page).is_file(), page


# -- indicators --------------------------------------------------------------------

def test_every_catalogue_indicator_is_defined_in_indicators_md():
    text = read("INDICATORS.md")
    defined = re.findall(r"^### ([A-Z]\d\d)$", section(text, "## Definitions"), re.M)
    assert defined == list(CODES), "one '### CODE' section per indicator, in catalogue order"
    for code in CODES:
        assert f"**{code}**" in text


def test_indicators_md_mentions_no_unknown_indicator():
    prose = hand_written(read("INDICATORS.md")) + hand_written(read("ADD_AN_INDICATOR.md"))
    mentioned = set(re.findall(r"\b([ICRS]\d\d)\b", prose))
    example = {"R06"}  # the worked example of ADD_AN_INDICATOR.md
    assert mentioned - set(CODES) - example == set()
    assert not example & set(CODES), "pick another example code in ADD_AN_INDICATOR.md"


# -- quality rules -----------------------------------------------------------------

def test_every_rule_of_the_suites_is_in_quality_rules_md():
    text = read("QUALITY_RULES.md")
    ids = [r.rule_id for s in schemas.STREAM_NAMES for r in expectations.rules(s)]
    assert len(ids) == len(set(ids))
    for rule_id in ids:
        assert f"**{rule_id}**" in text, rule_id


def test_the_prose_names_only_rules_that_exist():
    ids = {r.rule_id for s in schemas.STREAM_NAMES for r in expectations.rules(s)}
    for name in ("QUALITY_RULES.md", "INDICATORS.md", "CONTRACT.md"):
        mentioned = set(re.findall(r"\b([EFKLT]0\d)\b", hand_written(read(name))))
        assert mentioned <= ids, (name, mentioned - ids)


# -- contract ----------------------------------------------------------------------

def _table_names(text: str) -> list[str]:
    """First-column names of the markdown table rows in ``text``: | `name` | …"""
    return re.findall(r"^\| `(\w+)` \|", text, re.M)


@pytest.mark.parametrize("stream", schemas.STREAM_NAMES)
def test_contract_lists_every_field_of_the_schema(stream):
    fields = [f["name"] for f in schemas.load(stream).avro["fields"]]
    documented = _table_names(section(read("CONTRACT.md"), f"### {stream}"))
    assert documented == fields, "CONTRACT.md must list the .avsc fields, in order"


def test_contract_lists_the_columns_of_every_reference_file():
    text = read("CONTRACT.md")
    for path in sorted((ROOT / "reference" / "ningxia").glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        rest = text[text.index(f"**`{path.name}`**") + 1:]
        block = rest[:min(i for i in (rest.find("\n**`"), rest.find("\n## "), len(rest)) if i >= 0)]
        assert _table_names(block) == header, path.name


# -- warehouse ---------------------------------------------------------------------

def test_planned_warehouse_items_are_not_implemented_yet():
    """WAREHOUSE.md marks as planned what tables.py does not have; once one is
    built, the page must say so."""
    text = read("WAREHOUSE.md")
    # indicator_breakdown and dim_institution were the last planned items (issue 18):
    # the section goes when nothing is left in it.
    planned = (re.findall(r"^- \*\*`(\w+)`\*\*", section(text, "## Planned, not implemented"), re.M)
               if "## Planned, not implemented" in text else [])
    assert "indicator_breakdown" in TABLES and "dim_institution" in TABLES
    columns = {c for t in TABLES.values() for c in t.column_names}
    assert not set(planned) & (set(TABLES) | columns)


# -- links and references ----------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_point_to_files_inside_the_repository(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.is_relative_to(ROOT), f"{path.name}: {target} leaves the repository"
        assert dest.exists(), f"{path.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{path.name}: {target}: no such heading"


def test_no_document_points_to_specifications_outside_the_repository():
    """Issue 15: 'the README points to specifications outside the repository
    (`../shared/docs/`)'. Everything a user needs is in docs/."""
    outside = [str(p.relative_to(ROOT)) for p in markdown_files()
               if re.search(r"\.\./shared|shared/docs", p.read_text(encoding="utf-8"))]
    assert outside == []


def test_readme_links_the_specifications():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("CONTRACT.md", "INDICATORS.md", "QUALITY_RULES.md", "WAREHOUSE.md",
                 "OPERATIONS.md", "ADD_AN_INDICATOR.md"):
        assert f"](docs/{page})" in readme, page


def test_yibao_log_level_is_documented():
    """Issue 15: 'YIBAO_LOG_LEVEL is undocumented' — and so is every other
    variable the code reads."""
    used = set()
    for py in project_files("*.py"):  # the tests' own variables included
        src = py.read_text(encoding="utf-8")
        used |= set(re.findall(r"environ(?:\.get)?[\[(]\s*[\"'](\w+)[\"']", src))
        used |= set(re.findall(r"^\w+_ENV = [\"'](\w+)[\"']", src, re.M))
    assert "YIBAO_LOG_LEVEL" in used
    operations = read("OPERATIONS.md")
    assert {v for v in used if f"`{v}`" not in operations} == set()
