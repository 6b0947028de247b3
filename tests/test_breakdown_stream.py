"""Issue 18 on the stream: "indicator_breakdown ... (and stream where the
stream computes the indicator)".  The streaming job of
tests/test_stream_convergence.py (corrections moving settlements, reversals,
late lists, duplicates, early panes) writes the split of every streamed
indicator it splits; at the end its members add up to its own DAY and MONTH
rows, and its MONTH members equal the nightly job's."""
from __future__ import annotations

from collections import defaultdict

from tests.test_stream_convergence import converged  # noqa: F401
from transforms.indicators.catalog import BREAKDOWN
from transforms.streaming_compute import STREAMED_CODES
from warehouse.duckdb_store import connect

SPLIT = sorted(c for c in STREAMED_CODES if c in BREAKDOWN)


def _members(path, where: str) -> dict:
    con = connect(str(path), read_only=True)
    try:
        rows = con.execute(f"""SELECT indicator_code, region_code, period_type, period_start, member_code,
                                      numerator, denominator FROM indicator_breakdown WHERE {where}""").fetchall()
    finally:
        con.close()
    return {tuple(r[:5]): (r[5], r[6]) for r in rows}


def _values(path, where: str) -> dict:
    con = connect(str(path), read_only=True)
    try:
        rows = con.execute(f"""SELECT indicator_code, region_code, period_type, period_start, numerator,
                                      denominator FROM indicator_values WHERE {where}""").fetchall()
    finally:
        con.close()
    return {tuple(r[:4]): (r[4], r[5]) for r in rows}


def test_stream_members_add_up_and_equal_the_nightly_members(converged):  # noqa: F811
    out, nightly_wh, _ = converged
    codes = ", ".join(f"'{c}'" for c in SPLIT)
    stream = _members(out.warehouse, f"pipeline = 'stream' AND indicator_code IN ({codes})")
    assert {k[2] for k in stream} == {"DAY", "MONTH"}
    assert {k[0] for k in stream} == set(SPLIT), "every streamed split indicator has members"
    summed: dict = defaultdict(lambda: [0, 0])
    for (code, region, ptype, start, _), (num, den) in stream.items():
        summed[(code, region, ptype, start)][0] += num
        summed[(code, region, ptype, start)][1] += den
    values = _values(out.warehouse, f"pipeline = 'stream' AND indicator_code IN ({codes})")
    for key, v in values.items():
        assert tuple(summed.get(key, (0, 0))) == v, key
    assert set(summed) <= set(values)
    night = _members(nightly_wh, f"pipeline = 'nightly' AND period_type = 'MONTH' AND indicator_code IN ({codes})")
    stream_months = {k: v for k, v in stream.items() if k[2] == "MONTH"}
    assert stream_months == {k: v for k, v in night.items() if k[3] in {m[3] for m in stream_months}}
