"""Which source column feeds which contract field, and how to read it.

A mapping file (YAML)::

    stream: settlement          # optional; checked against --stream
    columns:                    # contract field: source column (header text)
      setl_id: 结算ID
      setl_time: 结算时间
    formats:                    # per field, where the defaults do not fit
      diag_codes: {separator: ";"}
      begndate: {format: "%Y/%m/%d"}       # strptime format for a date or time
      smart_audit: {true_values: [Y], false_values: [N]}
    encoding: gb18030           # CSV only; --encoding wins
    delimiter: ","              # CSV only; default: sniffed from the header
    sheet: 结算明细              # XLSX only; default: the first sheet

A field the mapping does not name is looked up by its contract name (case
and surrounding spaces ignored).  ``--mapping zh`` names the shipped
mapping for Chinese labels, ``importer/mappings/zh_<stream>.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

import schemas
from pipelines.errors import UsageError

SHIPPED = Path(__file__).resolve().parent / "mappings"
FORMAT_KEYS = {"separator", "format", "true_values", "false_values"}
TOP_KEYS = {"stream", "columns", "formats", "encoding", "delimiter", "sheet"}


@dataclass
class Mapping:
    stream: str
    columns: dict[str, str] = field(default_factory=dict)  # field -> source column
    formats: dict[str, dict] = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # encoding, delimiter, sheet
    source: str = "contract names"


def shipped_names() -> list[str]:
    return sorted({p.stem.rsplit("_", 1)[0] for p in SHIPPED.glob("*_enrolment.yaml")})


def load(spec: str | None, stream: str) -> Mapping:
    if spec is None:
        return Mapping(stream)
    path = Path(spec)
    if not path.exists() and spec in shipped_names():
        path = SHIPPED / f"{spec}_{stream}.yaml"
    if not path.is_file():
        raise UsageError(f"--mapping {spec}: no such file (or a shipped mapping: "
                         f"{', '.join(shipped_names())})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UsageError(f"--mapping {path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise UsageError(f"--mapping {path}: expected a mapping with 'columns:'")
    contract = schemas.load(stream).field_names
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise UsageError(f"--mapping {path}: unknown keys {sorted(unknown)} "
                         f"(allowed: {', '.join(sorted(TOP_KEYS))})")
    if raw.get("stream", stream) != stream:
        raise UsageError(f"--mapping {path} is for stream {raw['stream']!r}, not {stream!r}")
    columns = raw.get("columns") or {}
    formats = raw.get("formats") or {}
    for what, table in (("columns", columns), ("formats", formats)):
        if not isinstance(table, dict):
            raise UsageError(f"--mapping {path}: '{what}' must map contract fields")
        bad = [k for k in table if k not in contract]
        if bad:
            raise UsageError(f"--mapping {path}: {what} names {bad}, not fields of the "
                             f"{stream} contract ({', '.join(contract)})")
    for name, fmt in formats.items():
        if not isinstance(fmt, dict) or set(fmt) - FORMAT_KEYS:
            raise UsageError(f"--mapping {path}: formats.{name} may set only "
                             f"{', '.join(sorted(FORMAT_KEYS))}")
    return Mapping(stream, {k: str(v).strip() for k, v in columns.items()}, formats,
                   {k: raw[k] for k in ("encoding", "delimiter", "sheet") if raw.get(k)},
                   source=str(path))


@dataclass
class Plan:
    """The header matched to the contract."""

    sources: dict[str, int]  # field -> source column index
    defaulted: list[str]  # fields absent from the file that get the contract's default
    unknown: list[str]  # source columns no field reads
    error: str | None  # why the whole file is rejected, if it is


def resolve(header: list[str], mapping: Mapping) -> Plan:
    schema = schemas.load(mapping.stream)
    exact: dict[str, list[int]] = {}
    folded: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        exact.setdefault(name, []).append(i)
        folded.setdefault(name.strip().lower(), []).append(i)
    sources, defaulted, errors, missing = {}, [], [], []
    defaults = {f["name"] for f in schema.avro["fields"] if "default" in f}
    for name in schema.field_names:
        wanted = mapping.columns.get(name, name)
        hits = exact.get(wanted) or folded.get(wanted.strip().lower(), [])
        if len(hits) > 1:
            cols = " and ".join(str(i + 1) for i in hits)
            errors.append(f"duplicated header {wanted!r} (columns {cols}): "
                          f"which one is {name} cannot be told")
        elif hits:
            sources[name] = hits[0]
        elif name in defaults:
            defaulted.append(name)
        else:
            missing.append(name + (f" (mapped from {wanted!r})" if wanted != name else ""))
    if len(missing) == 1:
        errors.append(f"missing required column {missing[0]}")
    elif missing:
        errors.append(f"missing required columns ({len(missing)}): {', '.join(missing)}")
    used = set(sources.values())
    unknown = [h for i, h in enumerate(header) if i not in used]
    error = None
    if errors:
        error = "; ".join(errors)
        if any("\ufffd" in h for h in header):
            error += " — the header has undecodable bytes: is --encoding right?"
        elif len(missing) == len([n for n in schema.field_names if n not in defaults]) and \
                mapping.source == "contract names":
            error += " — no contract column names found: pass --mapping (e.g. --mapping zh)"
    return Plan(sources, defaulted, unknown, error)
