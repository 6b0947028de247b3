"""Reference data, business time and configuration: the pieces every
pipeline step leans on."""
import datetime as dt

import pytest

import reference
from pipelines.config import load_config
from transforms.context import default_months, month_range
from transforms.timeutil import business_date, deadline, is_working_day, parse_instant


def test_regions_hierarchy():
    ref = reference.load()
    assert ref.province.code == "640000"
    assert len(ref.cities) == 5 and len(ref.counties) == 22
    assert sum(1 for r in ref.regions.values() if r.level == "province") == 34
    assert all(c.pooling_code == c.parent_code for c in ref.counties)


@pytest.mark.parametrize("code, expected", [
    ("640104", ("640104", "640100", "640000")),  # county
    ("640100", (None, "640100", "640000")),  # 市本级: pooling and province, no county
    ("640000", (None, None, "640000")),  # 自治区本级
    ("640199", (None, None, "640000")),  # local prefix, unknown code
    ("610102", (None, None, None)),  # another province
    (None, (None, None, None)),
])
def test_attribution(code, expected):
    assert reference.load().attribution(code) == expected


def test_business_date_is_shanghai_not_machine_zone():
    instant = dt.datetime(2023, 1, 31, 23, 30, tzinfo=dt.UTC)
    assert business_date(instant) == dt.date(2023, 2, 1)
    assert parse_instant("2023-11-30T16:00:00Z") == dt.datetime(2023, 11, 30, 16, tzinfo=dt.UTC)
    # A naive time is Asia/Shanghai.
    assert parse_instant("2023-12-01 00:00:00") == dt.datetime(2023, 11, 30, 16, tzinfo=dt.UTC)


def test_working_days_follow_the_official_calendar():
    assert not is_working_day(dt.date(2023, 10, 2))  # National Day holiday
    assert is_working_day(dt.date(2023, 10, 7))  # 调休 Saturday
    # Thursday 28 Sep 2023: the next working day is the make-up Saturday 7 Oct.
    assert deadline(dt.date(2023, 9, 28), 1) == dt.date(2023, 10, 7)
    assert deadline(dt.date(2023, 10, 1), 0) == dt.date(2023, 10, 7)
    assert deadline(dt.date(2023, 10, 9), 0) == dt.date(2023, 10, 9)


def test_working_days_outside_the_calendar_fall_back_to_weekdays(caplog):
    assert deadline(dt.date(2099, 1, 2), 1) == dt.date(2099, 1, 5)  # Friday -> Monday


def test_months():
    assert month_range("2023-11..2024-02") == [dt.date(2023, 11, 1), dt.date(2023, 12, 1),
                                               dt.date(2024, 1, 1), dt.date(2024, 2, 1)]
    as_of = dt.datetime(2023, 3, 31, 16, 30, tzinfo=dt.UTC)  # 1 April in Shanghai
    assert default_months(as_of)[-1] == dt.date(2023, 4, 1)
    with pytest.raises(ValueError):
        month_range("2023-05..2023-01")


def test_targets_per_year_and_region(tmp_path):
    cfg = load_config()
    assert cfg.target("I17", 2022) == 0.30
    assert cfg.target("I17", 2023) == 0.50
    assert cfg.target("I17", 2025) == 0.70
    override = tmp_path / "c.yaml"
    override.write_text("targets:\n  I17:\n    by_region:\n      '640104': {by_year: {2023: 0.6}}\n"
                        "parameters:\n  settlement_list_days: 20\n")
    cfg = load_config(override)
    assert cfg.target("I17", 2023, "640104") == 0.6
    assert cfg.target("I17", 2023, "640105") == 0.50
    assert cfg.parameters["settlement_list_days"] == 20
    assert cfg.parameters["transfer_working_days"] == 15


def test_matters_promising_more_than_statutory_stop_the_run(tmp_path):
    src = reference.DEFAULT_DIR
    for name in reference.FILES:
        (tmp_path / name).write_text((src / name).read_text(encoding="utf-8"), encoding="utf-8")
    text = (tmp_path / "matters.csv").read_text(encoding="utf-8").splitlines()
    header = text[0].split(",")
    row = dict(zip(header, text[1].split(",")))
    row["promised_working_days"] = str(int(row["statutory_working_days"]) + 1)
    text[1] = ",".join(row[h] for h in header)
    (tmp_path / "matters.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(reference.ReferenceError, match=r"matters.csv line 2: matter"):
        reference.load(tmp_path)
