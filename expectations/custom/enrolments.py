"""E09: no person actively enrolled in both of two insurance types (重复参保).

A cross-record check over the records validated together: the metric sees
the whole batch and flags every active record of either type whose certno
also has an active record of the other type.  A null certno matches nobody.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import pandas as pd
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    MulticolumnMapMetricProvider,
    multicolumn_condition_partial,
)

from ._rowwise import frame_columns, values


class NoConcurrentEnrolment(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.no_concurrent_enrolment"
    condition_value_keys = ("insutypes", "active_status")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, insutypes, active_status, **kwargs):
        certnos, types, statuses = (values(c) for c in frame_columns(column_list))
        active = [c is not None and s == active_status and t in insutypes
                  for c, t, s in zip(certnos, types, statuses)]
        holders = {t: {c for c, t2, a in zip(certnos, types, active) if a and t2 == t} for t in insutypes}
        both = set.intersection(*holders.values())
        return pd.Series([not (a and c in both) for c, a in zip(certnos, active)],
                         index=column_list.index, dtype=bool)


class ExpectNoConcurrentEnrolment(MulticolumnMapExpectation):
    """column_list [certno, insutype, status]: no certno has records with status
    ``active_status`` of every type in ``insutypes``; all such records fail."""

    insutypes: list | SuiteParameterDict
    active_status: str
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"
    map_metric = "multicolumn_values.no_concurrent_enrolment"
    success_keys: ClassVar = ("insutypes", "active_status", "mostly")
