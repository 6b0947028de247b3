"""E01 resident ID valid, E03 gender and E04 birth date agree with it.

column_list = [cert type, certno, business date of the event] (+ gend or
brdy).  E03/E04 apply only where E01 passes, so they take E01's parameters.
A null certno or business date is not a valid ID (E01 fails); a null gend
or brdy does not agree (E03/E04 fail).
"""
from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    MulticolumnMapMetricProvider,
    multicolumn_condition_partial,
)

from ..resident_id import birth_date, gender
from ._rowwise import frame_columns, rowwise

_KEYS = ("cert_type", "province_prefixes", "earliest_birth_date")


def _born(cert_type, certno, as_of, wanted_type, prefixes, earliest: dt.date):
    """(applies, birth date or None): the ID is checked only for the wanted certificate type."""
    if cert_type != wanted_type:
        return False, None
    return True, birth_date(certno, as_of, prefixes, earliest)


class ResidentIdValid(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.resident_id_valid"
    condition_value_keys = _KEYS

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, cert_type, province_prefixes, earliest_birth_date, **kwargs):
        prefixes, earliest = frozenset(province_prefixes), dt.date.fromisoformat(earliest_birth_date)

        def passes(ctype, certno, as_of):
            applies, born = _born(ctype, certno, as_of, cert_type, prefixes, earliest)
            return not applies or born is not None

        return rowwise(passes, *frame_columns(column_list))


class GenderMatchesResidentId(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.gender_matches_resident_id"
    condition_value_keys = _KEYS

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, cert_type, province_prefixes, earliest_birth_date, **kwargs):
        prefixes, earliest = frozenset(province_prefixes), dt.date.fromisoformat(earliest_birth_date)

        def passes(ctype, certno, as_of, gend):
            _, born = _born(ctype, certno, as_of, cert_type, prefixes, earliest)
            return born is None or gend == gender(certno)

        return rowwise(passes, *frame_columns(column_list))


class BirthDateMatchesResidentId(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.birth_date_matches_resident_id"
    condition_value_keys = _KEYS

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, cert_type, province_prefixes, earliest_birth_date, **kwargs):
        prefixes, earliest = frozenset(province_prefixes), dt.date.fromisoformat(earliest_birth_date)

        def passes(ctype, certno, as_of, brdy):
            _, born = _born(ctype, certno, as_of, cert_type, prefixes, earliest)
            return born is None or brdy == born

        return rowwise(passes, *frame_columns(column_list))


class _ResidentIdExpectation(MulticolumnMapExpectation):
    cert_type: str = "01"
    province_prefixes: list | SuiteParameterDict
    earliest_birth_date: str = "1900-01-01"
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"
    success_keys: ClassVar = ("cert_type", "province_prefixes", "earliest_birth_date", "mostly")


class ExpectResidentIdToBeValid(_ResidentIdExpectation):
    """column_list [cert type, certno, business date]: for the certificate type
    ``cert_type``, certno is a valid GB 11643 resident ID (``expectations.resident_id``)."""

    map_metric = "multicolumn_values.resident_id_valid"


class ExpectGenderToMatchResidentId(_ResidentIdExpectation):
    """column_list [cert type, certno, business date, gend]: where the ID is valid,
    gend is "1" for an odd 17th digit and "2" for an even one."""

    map_metric = "multicolumn_values.gender_matches_resident_id"


class ExpectBirthDateToMatchResidentId(_ResidentIdExpectation):
    """column_list [cert type, certno, business date, brdy]: where the ID is valid,
    brdy is the birth date it encodes."""

    map_metric = "multicolumn_values.birth_date_matches_resident_id"
