"""Region checks: T09 settlement regions recognised, F03 matter applicable.

A null region is not recognised and has no applicable matters.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnPairMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    column_pair_condition_partial,
)

from ._rowwise import rowwise

IgnoreRowIf = Literal["both_values_are_missing", "either_value_is_missing", "neither"]


class RegionsRecognised(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.regions_recognised"
    condition_value_keys = ("local_codes_A", "local_codes_B", "other_province_prefixes")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, local_codes_A, local_codes_B, other_province_prefixes, **kwargs):
        local_a, local_b = frozenset(local_codes_A), frozenset(local_codes_B)
        other = frozenset(other_province_prefixes)

        def passes(a, b):
            if a is None or b is None:
                return False
            a_local, b_local = a in local_a, b in local_b
            return (a_local or a[:2] in other) and (b_local or b[:2] in other) and (a_local or b_local)

        return rowwise(passes, column_A, column_B)


class ExpectColumnPairRegionsToBeRecognised(ColumnPairMapExpectation):
    """A is in ``local_codes_A`` or starts with another province's two digits;
    B likewise with ``local_codes_B``; and at least one of them is local."""

    local_codes_A: list | SuiteParameterDict
    local_codes_B: list | SuiteParameterDict
    other_province_prefixes: list | SuiteParameterDict
    ignore_row_if: IgnoreRowIf = "neither"
    map_metric = "column_pair_values.regions_recognised"
    success_keys: ClassVar = ("local_codes_A", "local_codes_B", "other_province_prefixes",
                              "ignore_row_if", "mostly")


def matters_at(applicable_matters: dict, region: str) -> list[str]:
    """Lookup order of ``expectations.parameters.applicable_matters``."""
    for key in (region, region[:2]):
        if key in applicable_matters:
            return applicable_matters[key]
    return applicable_matters.get("", [])


class MatterApplies(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.matter_applies"
    condition_value_keys = ("applicable_matters",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, applicable_matters, **kwargs):
        sets = {k: frozenset(v) for k, v in applicable_matters.items()}
        return rowwise(lambda region, matter: region is not None and matter is not None
                       and matter in matters_at(sets, region), column_A, column_B)


class ExpectMatterToApplyInRegion(ColumnPairMapExpectation):
    """column_A region, column_B matter_code: the matter has a catalogue row that
    applies in the region.  ``applicable_matters`` maps a region code, else its
    first two digits, else "" to the matter codes applying there."""

    applicable_matters: dict[str, list[str]] | SuiteParameterDict
    ignore_row_if: IgnoreRowIf = "neither"
    map_metric = "column_pair_values.matter_applies"
    success_keys: ClassVar = ("applicable_matters", "ignore_row_if", "mostly")
