"""Custom Great Expectations expectations for the rules GE has no built-in for.

Each is written the GE way — an Expectation subclass (column map, column
pair map or multicolumn map) plus a registered metric provider with a
pandas implementation — and registers itself on import.  The row logic is
plain Python over the row's values (money as ``Decimal``, dates as
``datetime.date``; see ``expectations.derived.ge_frame``).  Their SQL twins
are in ``expectations/compile.py``.

Nulls: column map expectations skip nulls (GE's convention, as the
built-ins); the pair and multicolumn ones see every row
(``ignore_row_if`` "neither" / "never") and each says what a null means.
"""
from . import amounts, conditional, enrolments, names, regions, resident_ids  # noqa: F401
