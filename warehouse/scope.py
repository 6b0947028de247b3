"""Which rows of a scoped table (quality_failures, dead_letters) a publish replaces.

These tables have no key: a re-run replaces the earlier run's rows "for the
same input scope" (WAREHOUSE.md). The caller names that scope explicitly,
engine-neutrally, so the same Scope works for DuckDB and BigQuery:

    Scope(values={"stream": ["settlement"]},
          ranges={"business_date": (date(2023, 1, 1), date(2023, 11, 30))})

Conditions are ANDed. ``values``: the column's value is one of the list
(``None`` in the list matches NULL). ``ranges``: lo <= column <= hi, both
inclusive (NULL never matches). ``under``: the column is a path under the
root, by whole components — ``Scope(under={"source": "/in/p_text"})``
matches ``/in/p_text`` and ``/in/p_text/a.avro#block=2`` but not
``/in/p_text_avro/a.avro`` (a bare string prefix would). ``Scope(everything=True)``
is the whole table; a Scope with no condition is refused so nothing is
wiped by accident.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warehouse.tables import Table


@dataclass(frozen=True)
class Scope:
    values: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    under: Mapping[str, str] = field(default_factory=dict)
    everything: bool = False

    def __post_init__(self):
        if not (self.values or self.ranges or self.under or self.everything):
            raise ValueError("empty Scope: give values/ranges/under, or everything=True")
        if isinstance(self.values, str) or any(isinstance(v, str) for v in self.values.values()):
            raise TypeError("Scope.values maps a column to a list of values, not a string")
        if any(not isinstance(r, str) or not r.strip("/") for r in self.under.values()):
            raise ValueError(f"Scope.under needs a path below the top, got {dict(self.under)}")

    def columns(self) -> set[str]:
        return set(self.values) | set(self.ranges) | set(self.under)

    def predicate(self, table: Table, param: Callable[[str, Any], str]) -> str:
        """SQL condition on ``table``'s columns; ``param(column, value)``
        binds a value and returns its placeholder (engine-specific)."""
        unknown = self.columns() - set(table.column_names)
        if unknown:
            raise ValueError(f"scope of {table.name}: unknown columns {sorted(unknown)}")
        parts = []
        for col, vals in self.values.items():
            present = [v for v in vals if v is not None]
            alts = []
            if present:
                alts.append(f"{col} IN ({', '.join(param(col, v) for v in present)})")
            if len(present) < len(vals):
                alts.append(f"{col} IS NULL")
            parts.append(f"({' OR '.join(alts)})" if alts else "FALSE")
        for col, (lo, hi) in self.ranges.items():
            parts.append(f"({col} BETWEEN {param(col, lo)} AND {param(col, hi)})")
        for col, root in self.under.items():
            # STARTS_WITH (DuckDB and BigQuery alike) takes no pattern, so a
            # root's % and _ need no escaping, as they would with LIKE.
            root = root.rstrip("/")
            parts.append(f"({col} = {param(col, root)}"
                         f" OR STARTS_WITH({col}, {param(col, root + '/')}))")
        return " AND ".join(parts) or "TRUE"
