"""The indicator catalogue carries what it can (issue 15: "today one indicator
touches six places — reduce that where the catalogue can carry it"): which
indicators the streaming pipeline keeps is the catalogue's ``stream_group``."""
from __future__ import annotations

import dataclasses
import importlib

import pytest

from transforms.indicators.catalog import INDICATORS
from transforms.streaming_compute import GROUP_CODES, GROUPS, STREAMED_CODES


def test_the_streamed_indicators_are_the_flow_indicators_the_architecture_names():
    # ARCHITECTURE: "I08 I10 I14 I17 I22 I25 I26 R01–R05 S02; I13 once its 30 days have passed".
    assert sorted(STREAMED_CODES) == sorted(
        "I08 I10 I13 I14 I17 I22 I25 I26 R01 R02 R03 R04 R05 S02".split())
    assert GROUP_CODES == {
        "settlement": ("I08", "I14", "I17", "I22", "R01", "R02", "R03", "R04", "R05"),
        "i13": ("I13",),
        "contribution": ("I10",),
        "filing": ("I25", "I26", "S02"),
        "settlement_list": (),  # lists' panes feed their quality rules only
    }
    streamed = [i for i in INDICATORS if i.stream_group]
    assert all(i.time_rule == "flow" for i in streamed)
    assert {i.stream_group for i in streamed} == set(GROUPS) - {"settlement_list"}


def test_a_new_streamed_indicator_needs_only_its_catalogue_entry(monkeypatch):
    import transforms.indicators.catalog as catalog
    import transforms.streaming_compute as streaming_compute

    r06 = dataclasses.replace(catalog.BY_CODE["R02"], code="R06")
    try:
        monkeypatch.setattr(catalog, "INDICATORS", (*catalog.INDICATORS, r06))
        assert "R06" in importlib.reload(streaming_compute).GROUP_CODES["settlement"]
        monkeypatch.setattr(catalog, "INDICATORS", (*catalog.INDICATORS[:-1],
                                                    dataclasses.replace(r06, stream_group="hourly")))
        with pytest.raises(ValueError, match="R06.*hourly"):
            importlib.reload(streaming_compute)
    finally:
        monkeypatch.undo()
        importlib.reload(streaming_compute)
