"""Data-quality rules (QUALITY_RULES.md) as Great Expectations suites.

The suites in ``expectations/suites/*.json`` — one per stream — are the
single source of every rule: each expectation's ``meta`` carries rule_id,
severity and description, and reference-dependent values are suite
parameters bound from reference data at run time (``parameters.py``).
They are executed two ways, proven equal rule by rule
(tests/test_quality_parity.py):

- ``verdict_sql``: the suite compiled to DuckDB SQL (``compile.py``), the
  pipeline's vectorised hot path;
- ``ge_failures``: the real suite run by Great Expectations on pandas, with
  the custom expectations of ``custom/``.  Great Expectations is imported
  only there (importing it takes seconds).

Public API: ``rules``, ``Rule``, ``verdict_sql``, ``ge_failures``, ``ge_frame``.
"""
from __future__ import annotations

from .catalogue import Rule, rules
from .compile import verdict_sql
from .derived import ge_frame


def ge_failures(stream: str, df, ref) -> dict[str, set[int]]:
    """Run the stream's suite through Great Expectations on ``df`` (pandas
    DataFrame or Arrow table with the contract columns); rule_id -> the
    failing row positions."""
    from .ge_runner import ge_failures as run  # lazy: imports great_expectations

    return run(stream, df, ref)


__all__ = ["Rule", "rules", "verdict_sql", "ge_failures", "ge_frame"]
