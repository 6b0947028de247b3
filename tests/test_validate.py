"""Validate(stream): the compiled suite on record batches in a Beam pipeline."""
import apache_beam as beam
import pyarrow as pa
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

import reference
import schemas
from tests.builders import D, enrolment, settlement, utc
from transforms.validate import Validate


def _table(stream, records):
    return pa.Table.from_pylist(records, schema=schemas.load(stream).arrow)


def test_validate_emits_each_record_with_the_rules_it_fails():
    ref = reference.load()
    good = settlement("v1", utc(2023, 3, 1, 2))
    unbalanced = settlement("v2", utc(2023, 3, 1, 2), psn_cash_pay=D(261))  # T04
    no_diagnosis = settlement("v3", utc(2023, 3, 1, 2), dscg_maindiag_code=None)  # T08
    batch = _table("settlement", [good, unbalanced, no_diagnosis])
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = (p | beam.Create([batch]) | Validate("settlement", ref)
               | beam.FlatMap(lambda t: zip(t.column("setl_id").to_pylist(),
                                            t.column("failed_rules").to_pylist())))
        assert_that(out, equal_to([("v1", []), ("v2", ["T04"]), ("v3", ["T08"])]))


def test_cross_record_rules_look_across_the_batch():
    ref = reference.load()
    a = enrolment("p1", utc(2023, 3, 1), insutype="310", emp_no="E1")
    b = enrolment("p1", utc(2023, 3, 1), insutype="390", certno=a["certno"])  # 重复参保: E09
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = (p | beam.Create([_table("enrolment", [a, b])]) | Validate("enrolment", ref)
               | beam.FlatMap(lambda t: t.column("failed_rules").to_pylist()))
        assert_that(out, equal_to([["E09"], ["E09"]]))
