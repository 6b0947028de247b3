"""Money checks on settlements (T03 signs, T04/T05 balances, T06 policy scope).

Money arrives as ``Decimal`` (exact).  A null amount fails each of these:
it can be neither signed, nor summed, nor compared.
"""
from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    MulticolumnMapMetricProvider,
    multicolumn_condition_partial,
)

from ._rowwise import frame_columns, rowwise

IgnoreRowIf = Literal["all_values_are_missing", "any_value_is_missing", "never"]


class AmountSigns(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.amount_signs"
    condition_value_keys = ("normal_flag", "reversal_flag")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, normal_flag, reversal_flag, **kwargs):
        def passes(flag, *money):
            if flag == normal_flag:
                return all(m is not None and m >= 0 for m in money)
            if flag == reversal_flag:
                return all(m is not None and m <= 0 for m in money)
            return True  # an unknown flag is T02's concern

        return rowwise(passes, *frame_columns(column_list))


class ExpectAmountSignsToMatchSettlementDirection(MulticolumnMapExpectation):
    """column_list [flag, money...]: every amount >= 0 when flag is ``normal_flag``,
    <= 0 when it is ``reversal_flag``; other flags are not checked."""

    normal_flag: str
    reversal_flag: str
    ignore_row_if: IgnoreRowIf = "never"
    map_metric = "multicolumn_values.amount_signs"
    success_keys: ClassVar = ("normal_flag", "reversal_flag", "mostly")


class Balance(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.balance"
    condition_value_keys = ("tolerance",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, tolerance, **kwargs):
        tol = Decimal(str(tolerance))

        def passes(*amounts):
            *parts, total = amounts
            return None not in amounts and abs(sum(parts) - total) <= tol

        return rowwise(passes, *frame_columns(column_list))


class ExpectMulticolumnValuesToBalance(MulticolumnMapExpectation):
    """column_list [parts..., total]: the parts add up to the total within
    ``tolerance`` (|difference| <= tolerance; a string keeps it exact)."""

    tolerance: str | float = "0.01"
    ignore_row_if: IgnoreRowIf = "never"
    map_metric = "multicolumn_values.balance"
    success_keys: ClassVar = ("tolerance", "mostly")


class AmountWithinTotal(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.amount_within_total"
    condition_value_keys = ("reversal_flag",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, reversal_flag, **kwargs):
        def passes(flag, amount, total):
            if amount is None or total is None:
                return False
            return abs(amount) <= abs(total) if flag == reversal_flag else amount <= total

        return rowwise(passes, *frame_columns(column_list))


class ExpectAmountNotToExceedTotal(MulticolumnMapExpectation):
    """column_list [flag, amount, total]: amount <= total; compared in absolute
    value when flag is ``reversal_flag`` (reversals carry negative amounts)."""

    reversal_flag: str
    ignore_row_if: IgnoreRowIf = "never"
    map_metric = "multicolumn_values.amount_within_total"
    success_keys: ClassVar = ("reversal_flag", "mostly")
