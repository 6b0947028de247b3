"""Writes the tables of docs/*.md that the code already holds, so the pages
cannot drift from it:

- docs/INDICATORS.md: the indicator catalogue (transforms/indicators/catalog.py)
  with the default targets (pipelines/defaults.yaml);
- docs/QUALITY_RULES.md: the rules of every suite (expectations/suites/*.json);
- docs/WAREHOUSE.md: the columns of every table (warehouse/tables.py).

Each table sits between ``<!-- BEGIN GENERATED name -->`` and
``<!-- END GENERATED name -->``; the text around it is written by hand.

    python docs/gen_tables.py          # rewrite the generated blocks
    python docs/gen_tables.py --check  # exit 1 when a block is stale

tests/test_docs.py fails when a block differs from what this script writes.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Indicator family -> its page under docs/indicators/ (worked examples).
FAMILY_PAGES = {
    "quality": "quality.md",
    "enrolment": "enrolment.md",
    "contribution": "contribution.md",
    "settlement": "settlement.md",
    "treatment": "settlement.md",
    "settlement_list": "settlement_list.md",
    "case": "cases.md",
    "catalogue": "catalogue.md",
    "cost": "cost.md",
}
STREAM_TITLES = {
    "enrolment": "enrolment (参保登记)",
    "contribution": "contribution (缴费)",
    "settlement": "settlement (结算)",
    "settlement_list": "settlement_list (医保结算清单上传)",
    "filing": "filing (经办事项 / 备案)",
}


def _imports():
    sys.path.insert(0, str(ROOT))
    import expectations
    import schemas
    from pipelines.config import load_config
    from transforms.indicators.catalog import INDICATORS, MANUAL_EVIDENCE
    from warehouse import tables

    return expectations, schemas, load_config(), INDICATORS, MANUAL_EVIDENCE, tables


def _cell(text) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value) -> str:
    text = f"{float(value) * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def target_text(code: str, direction: str, config) -> str:
    """The default target as INDICATORS.md states it: ``≥ 80%``, with by-year
    and by-region overrides spelt out."""
    spec = config.raw.get("targets", {}).get(code)
    if not spec or "default" not in spec:
        raise ValueError(f"{code} has no default target in pipelines/defaults.yaml")
    sign = "≥" if direction == ">=" else "≤"
    text = f"{sign} {_pct(spec['default'])}"
    by_year = spec.get("by_year") or {}
    if by_year:
        text += " (" + ", ".join(f"{y}: {_pct(v)}" for y, v in sorted(by_year.items())) + ")"
    if spec.get("by_region"):
        text += f" (own targets for {', '.join(sorted(map(str, spec['by_region'])))})"
    return text


def indicator_blocks(mods) -> dict[str, str]:
    _, _, config, indicators, manual, _ = mods
    glance, counted = [], []
    for i in indicators:
        page = FAMILY_PAGES.get(i.family)
        if page is None:
            raise ValueError(f"{i.code}: family {i.family!r} has no page in FAMILY_PAGES")
        glance.append([f"**{i.code}**", i.name_zh, i.name_en, i.plan_number or "–",
                       f"[{i.family}](indicators/{page})", i.time_rule,
                       i.stream_group or "–",
                       target_text(i.code, i.direction, config)])
        counted.append([f"**{i.code}**", f"`{i.region_column}`" if re.fullmatch(r"\w+", i.region_column)
                        else i.region_column, i.population, i.numerator, i.denominator])
    return {
        "indicators": _table(["code", "名称", "name", "plan no.", "family (worked examples)",
                              "time rule", "stream group", "default target"], glance),
        "indicator-definitions": _table(["code", "region by", "population", "numerator",
                                         "denominator"], counted),
        "manual-evidence": _table(["plan no.", "指标"], [[n, name] for n, name in manual]),
    }


def rule_blocks(mods) -> dict[str, str]:
    expectations, schemas, *_ = mods
    out = {}
    for stream in schemas.STREAM_NAMES:
        suite = expectations.catalogue.suite(stream)
        types: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for exp in suite["expectations"]:
            seen = types.setdefault(exp["meta"]["rule_id"], [])
            if exp["type"] not in seen:
                seen.append(exp["type"])
            if exp["meta"].get("name_zh"):
                names[exp["meta"]["rule_id"]] = exp["meta"]["name_zh"]
        rows = [[f"**{r.rule_id}**", names.get(r.rule_id, ""), r.severity, r.description,
                 ", ".join(f"`{t}`" for t in types[r.rule_id])]
                for r in expectations.rules(stream)]
        out[f"rules-{stream}"] = (f"Suite `expectations/suites/{stream}.json` — "
                                  f"{STREAM_TITLES[stream]}:\n\n"
                                  + _table(["rule", "名称", "severity", "what it checks", "expectations"], rows))
    return out


def warehouse_blocks(mods) -> dict[str, str]:
    tables = mods[-1]
    out = {}
    for name, t in tables.TABLES.items():
        facts = [f"Key: {', '.join(t.key) if t.key else 'none'}",
                 {"key": "a publish replaces the rows whose key it writes",
                  "scope": "a publish replaces the rows inside the run's scope",
                  "all": "a publish replaces the whole table"}[t.write]]
        if t.partition_month:
            facts.append(f"BigQuery: partitioned by month of {t.partition_month}")
        if t.cluster_by:
            facts.append(f"clustered by {', '.join(t.cluster_by)}")
        rows = []
        for c in t.columns:
            bq_type, precision, scale = tables.BIGQUERY_TYPES[c.type]
            bq = f"{bq_type}({precision}, {scale})" if precision is not None else bq_type
            rows.append([f"`{c.name}`", tables.DUCKDB_TYPES[c.type], bq,
                         "yes" if c.nullable else "no", c.description])
        out[f"table-{name}"] = (f"{t.description} {'; '.join(facts)}.\n\n"
                                + _table(["column", "DuckDB", "BigQuery", "null", "meaning"], rows))
    return out


def render() -> dict[Path, dict[str, str]]:
    """docs page -> {block name: generated text}."""
    mods = _imports()
    return {
        DOCS / "INDICATORS.md": indicator_blocks(mods),
        DOCS / "QUALITY_RULES.md": rule_blocks(mods),
        DOCS / "WAREHOUSE.md": warehouse_blocks(mods),
    }


def fill(text: str, blocks: dict[str, str], page: str) -> str:
    """``text`` with every block replaced; a block without its markers is an error."""
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- BEGIN GENERATED {re.escape(name)} -->\n).*?"
                             rf"(<!-- END GENERATED {re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{page}: no '<!-- BEGIN GENERATED {name} -->' … "
                             f"'<!-- END GENERATED {name} -->' markers")
        text = pattern.sub(lambda m, b=body: m[1] + b + "\n" + m[2], text)
    return text


def stale() -> list[str]:
    """Pages whose generated blocks differ from the code."""
    out = []
    for path, blocks in render().items():
        text = path.read_text(encoding="utf-8")
        if fill(text, blocks, path.name) != text:
            out.append(str(path.relative_to(ROOT)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only report stale pages (exit 1)")
    args = p.parse_args(argv)
    if args.check:
        pages = stale()
        for page in pages:
            print(f"{page} is stale: run python docs/gen_tables.py", file=sys.stderr)
        return 1 if pages else 0
    for path, blocks in render().items():
        text = path.read_text(encoding="utf-8")
        new = fill(text, blocks, path.name)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
