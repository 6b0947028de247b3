"""Column-pair checks of B that apply depending on A (E08, T01, T08, F02).

Every row is seen (ignore_row_if "neither").  A null A never satisfies a
condition on A; a null B is neither filled, nor in a set, nor matching.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnPairMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    column_pair_condition_partial,
)

from ..text import is_blank
from ._rowwise import rowwise

IgnoreRowIf = Literal["both_values_are_missing", "either_value_is_missing", "neither"]


class _PairExpectation(ColumnPairMapExpectation):
    ignore_row_if: IgnoreRowIf = "neither"


class FilledWhenInSet(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.b_filled_when_a_in_set"
    condition_value_keys = ("value_set",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, value_set, **kwargs):
        wanted = frozenset(value_set)
        return rowwise(lambda a, b: a not in wanted or (b is not None and not is_blank(b)),
                       column_A, column_B)


class ExpectColumnPairValuesBToBeFilledWhenAInSet(_PairExpectation):
    """Where A is in ``value_set``, B is present and not blank (only White_Space)."""

    value_set: list | SuiteParameterDict
    map_metric = "column_pair_values.b_filled_when_a_in_set"
    success_keys: ClassVar = ("value_set", "ignore_row_if", "mostly")


class InSetWhenInSet(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.b_in_set_when_a_in_set"
    condition_value_keys = ("value_set_A", "value_set_B")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, value_set_A, value_set_B, **kwargs):
        set_a, set_b = frozenset(value_set_A), frozenset(value_set_B)
        return rowwise(lambda a, b: a not in set_a or b in set_b, column_A, column_B)


class ExpectColumnPairValuesBToBeInSetWhenAInSet(_PairExpectation):
    """Where A is in ``value_set_A``, B is in ``value_set_B``."""

    value_set_A: list | SuiteParameterDict
    value_set_B: list | SuiteParameterDict
    map_metric = "column_pair_values.b_in_set_when_a_in_set"
    success_keys: ClassVar = ("value_set_A", "value_set_B", "ignore_row_if", "mostly")


class RegexWhenCategory(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.b_matches_regex_when_a_category_in_set"
    condition_value_keys = ("category_length", "categories", "regex")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, category_length, categories, regex, **kwargs):
        wanted, pattern = frozenset(categories), re.compile(regex)

        def passes(a, b):
            applies = isinstance(a, str) and a[:category_length] in wanted
            return not applies or (b is not None and pattern.search(b) is not None)

        return rowwise(passes, column_A, column_B)


class ExpectColumnPairValuesBToMatchRegexWhenACategoryInSet(_PairExpectation):
    """Where A's category (its first ``category_length`` characters) is in
    ``categories``, B is present and ``regex`` is found in it (anchor it)."""

    category_length: int
    categories: list | SuiteParameterDict
    regex: str
    map_metric = "column_pair_values.b_matches_regex_when_a_category_in_set"
    success_keys: ClassVar = ("category_length", "categories", "regex", "ignore_row_if", "mostly")


class PresentIffInSet(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.b_present_iff_a_in_set"
    condition_value_keys = ("value_set",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, value_set, **kwargs):
        wanted = frozenset(value_set)
        return rowwise(lambda a, b: (a in wanted) == (b is not None), column_A, column_B)


class ExpectColumnPairValuesBToBePresentIffAInSet(_PairExpectation):
    """B is present exactly when A is in ``value_set``."""

    value_set: list | SuiteParameterDict
    map_metric = "column_pair_values.b_present_iff_a_in_set"
    success_keys: ClassVar = ("value_set", "ignore_row_if", "mostly")
