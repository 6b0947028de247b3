"""E02: a person's name — its length in code points, no decimal digit, no
White_Space at either end.  Nulls are skipped (column map)."""
from __future__ import annotations

from typing import ClassVar

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from ..text import WHITE_SPACE


def is_person_name(name: str, min_length: int, max_length: int) -> bool:
    return (min_length <= len(name) <= max_length
            and not any(ch.isdecimal() for ch in name)  # Unicode decimal digits, ０-９ too
            and name[0] not in WHITE_SPACE and name[-1] not in WHITE_SPACE)


class ColumnValuesPersonName(ColumnMapMetricProvider):
    condition_metric_name = "column_values.person_name"
    condition_value_keys = ("min_length", "max_length")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, min_length, max_length, **kwargs):
        return column.map(lambda v: is_person_name(v, min_length, max_length)).astype(bool)


class ExpectColumnValuesToBePersonName(ColumnMapExpectation):
    """Values are names of ``min_length``-``max_length`` code points with no Unicode
    decimal digit and no leading or trailing White_Space character."""

    min_length: int = 2
    max_length: int = 30
    map_metric = "column_values.person_name"
    success_keys: ClassVar = ("min_length", "max_length", "mostly")
