"""The rule catalogue, read from the suites (``expectations/suites/*.json``).

A rule is one or more expectations sharing a ``meta.rule_id`` (E05 checks
three code sets, for instance): a record fails the rule when it fails any
of them.  Every expectation's ``meta`` carries rule_id, severity
(blocking | quality) and description, identical across a rule's
expectations.  Reading the catalogue needs only ``json`` — not Great
Expectations — so the pipeline's hot path stays light.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .derived import DERIVED

SUITE_DIR = Path(__file__).resolve().parent / "suites"
SEVERITIES = ("blocking", "quality")
_COLUMN_KEYS = ("column", "column_A", "column_B", "column_list")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: str  # blocking | quality
    description: str
    stream: str
    columns: tuple[str, ...]  # contract columns the rule reads (derived ones mapped to their source)
    cross_record: bool = False  # its verdict depends on the other records evaluated together


#: Expectation types whose verdict for a row depends on other rows (E09).
CROSS_RECORD_TYPES = frozenset({"expect_no_concurrent_enrolment"})


@functools.cache
def _suite(stream: str) -> dict:
    path = SUITE_DIR / f"{stream}.json"
    if not path.exists():
        raise KeyError(f"no suite for stream {stream!r} ({path})")
    suite = json.loads(path.read_text(encoding="utf-8"))
    for i, exp in enumerate(suite["expectations"]):
        meta = exp.get("meta", {})
        missing = {"rule_id", "severity", "description"} - meta.keys()
        if missing or meta["severity"] not in SEVERITIES:
            raise ValueError(f"{path}: expectation {i} ({exp['type']}) needs meta rule_id, "
                             f"severity in {SEVERITIES} and description; got {meta}")
    return suite


def suite(stream: str) -> dict:
    """The suite as stored (a deep copy: callers may bind parameters into it)."""
    return copy.deepcopy(_suite(stream))


def expectation_columns(exp: dict) -> list[str]:
    kwargs = exp["kwargs"]
    cols: list[str] = []
    for key in _COLUMN_KEYS:
        value = kwargs.get(key)
        cols += value if isinstance(value, list) else [value] if value else []
    return cols


@functools.cache
def _rules(stream: str) -> tuple[Rule, ...]:
    source = {d.name: d.source for d in DERIVED[stream]}
    by_id: dict[str, Rule] = {}
    for exp in _suite(stream)["expectations"]:
        meta = exp["meta"]
        cols = tuple(source.get(c, c) for c in expectation_columns(exp))
        cross = exp["type"] in CROSS_RECORD_TYPES
        rule = by_id.get(meta["rule_id"])
        if rule is None:
            by_id[meta["rule_id"]] = Rule(meta["rule_id"], meta["severity"], meta["description"],
                                          stream, tuple(dict.fromkeys(cols)), cross)
            continue
        if (rule.severity, rule.description) != (meta["severity"], meta["description"]):
            raise ValueError(f"suite {stream}: the expectations of {rule.rule_id} disagree on "
                             "severity or description")
        by_id[rule.rule_id] = Rule(rule.rule_id, rule.severity, rule.description, stream,
                                   tuple(dict.fromkeys(rule.columns + cols)),
                                   rule.cross_record or cross)
    return tuple(by_id.values())


def rules(stream: str) -> list[Rule]:
    """The stream's rules in catalogue order (first appearance in the suite)."""
    return list(_rules(stream))
