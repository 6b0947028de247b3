"""Run a suite with Great Expectations (ephemeral context, pandas datasource).

Imported lazily by ``expectations.ge_failures``: ``import great_expectations``
takes seconds.  Analytics are switched off before the import so nothing
reaches the network, and progress bars are off so runs stay quiet.
"""
from __future__ import annotations

import functools
import os
import warnings

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from . import custom  # noqa: E402, F401 - registers the custom expectations
from .catalogue import rules, suite  # noqa: E402
from .derived import ge_frame  # noqa: E402
from .parameters import suite_parameters  # noqa: E402

RESULT_FORMAT = {"result_format": "COMPLETE"}  # unexpected_index_list = failing positions


@functools.cache
def _batch_definition():
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    asset = context.data_sources.add_pandas("records").add_dataframe_asset("stream")
    return asset.add_batch_definition_whole_dataframe("whole")


def ge_suite(stream: str) -> gx.ExpectationSuite:
    stored = suite(stream)
    built = gx.ExpectationSuite(name=stored["name"], expectations=stored["expectations"],
                                meta=stored.get("meta"))
    # ExpectationSuite drops an invalid configuration with only a log line: refuse instead.
    if len(built.expectations) != len(stored["expectations"]):
        raise ValueError(f"suite {stream}: {len(stored['expectations']) - len(built.expectations)} "
                         "expectation(s) rejected by Great Expectations (see the log)")
    return built


def ge_failures(stream: str, df, ref) -> dict[str, set[int]]:
    frame = ge_frame(stream, df)  # contract types + derived columns, RangeIndex = positions
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    with warnings.catch_warnings():  # GE's own pandas 3 deprecations, not ours to fix
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        result = batch.validate(ge_suite(stream), result_format=RESULT_FORMAT,
                                expectation_parameters=suite_parameters(ref))
    failures: dict[str, set[int]] = {r.rule_id: set() for r in rules(stream)}
    for res in result.results:
        config = res.expectation_config
        # GE catches exceptions into the result: a rule that could not run must not pass silently
        if errors := _errors(res.exception_info):
            raise RuntimeError(f"{config.type} ({config.meta['rule_id']}) raised: {'; '.join(errors)}")
        failures[config.meta["rule_id"]].update(int(i) for i in res.result.get("unexpected_index_list") or ())
    return failures


def _errors(info) -> list[str]:
    """Exception messages in an exception_info (flat, or keyed by metric)."""
    if not info:
        return []
    if "raised_exception" in info:
        return [str(info.get("exception_message"))] if info["raised_exception"] else []
    return [m for value in info.values() if isinstance(value, dict) for m in _errors(value)]
