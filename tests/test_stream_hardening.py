"""Issue 14, items 3 and 9, in streaming.

Item 3: "In streaming, a date of 2^31−1 days or such a timestamp [in
nanoseconds] crash-loops the job. Every value outside what the contract's
logical types can represent … makes … its message a dead letter in
streaming, with the accounting still balancing."

Item 9: "Streaming reads a file that is still being written and never
re-reads it once complete: only pick up files that are complete … Symlinks:
follow them or dead-letter them, never skip silently."
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.builders import settlement, utc, write_avro
from tests.test_decode_hardening import MAX_DATE, NS_TIMESTAMP, blocks_file
from tests.test_stream import DAY1, Script, message, run_stream, start_of
from transforms.streaming import LandedFile
from transforms.streaming_sources import LandingPoller


def test_poison_values_in_files_and_messages_are_dead_letters_and_counts_balance(tmp_path):
    good = [settlement(f"q{i}", utc(2023, 3, 6, 2 + i)) for i in range(3)]
    path = tmp_path / "poison.avro"
    blocks_file(path, "settlement", [
        [good[0]],
        [dict(settlement("q-ns", utc(2023, 3, 6, 5)), setl_time=NS_TIMESTAMP)],
        [good[1]],
        [dict(settlement("q-date", utc(2023, 3, 6, 6)), begndate=MAX_DATE)],
        [dict(settlement("q-edge", utc(2023, 3, 6, 7)), setl_time=utc(9999, 12, 31, 20))],
    ])
    ns = message("settlement", dict(settlement("m-ns", utc(2023, 3, 6, 7)), setl_time=NS_TIMESTAMP))
    date = message("settlement", dict(settlement("m-date", utc(2023, 3, 6, 8)), enddate=MAX_DATE))
    # A valid instant whose business day (Asia/Shanghai) is in the year 10000.
    edge = message("settlement", dict(settlement("m-edge", utc(2023, 3, 6, 9)),
                                      setl_time=utc(9999, 12, 31, 20)))
    # Valid, but its windows would close after 9999-12-31.
    near = message("settlement", dict(settlement("m-near", utc(2023, 3, 6, 10)),
                                      setl_time=utc(9999, 12, 20, 2)))
    script = (Script(start_of(DAY1))
              .send(LandedFile("settlement", str(path)), ns, date, edge, near,
                    message("settlement", good[2]))
              .tick())
    out = run_stream(script.end(), tmp_path)

    counts = out.counts("settlement")
    # The file: 3 records + 2 damaged blocks; then 5 messages.
    assert counts == {"read": 5 + 5, "accepted": 3, "duplicates": 0, "dead_lettered": 7,
                      "late_dropped": 0}
    assert counts["read"] == sum(v for k, v in counts.items() if k != "read")
    assert out.value("I08", "640104", "DAY", DAY1) == (3, 3)
    sources = sorted(s for (s,) in out.sql("SELECT source FROM dead_letters"))
    assert sources == sorted([f"{path}#block=1", f"{path}#block=3", f"{path}#record=4",
                              ns.source, date.source, edge.source, near.source])
    errors = dict(out.sql("SELECT source, error FROM dead_letters"))
    assert "setl_time" in errors[f"{path}#block=1"] and "begndate" in errors[f"{path}#block=3"]
    assert "streaming windows" in errors[edge.source]
    assert "streaming windows" in errors[f"{path}#record=4"]


# --- which landed files are read, and when --------------------------------------


def landing_with(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    (landing / "settlement").mkdir(parents=True)
    return landing


def age(path: Path, seconds: float, now: float) -> None:
    os.utime(path, (now - seconds, now - seconds), follow_symlinks=not path.is_symlink())


def test_a_file_being_written_waits_until_it_settles(tmp_path):
    """Item 9: "Streaming reads a file that is still being written"."""
    landing = landing_with(tmp_path)
    poller = LandingPoller(str(landing), poll_interval=0.1, settle_seconds=2)
    path = landing / "settlement" / "a.avro"
    now = 1_900_000_000.0
    with path.open("wb") as f:  # a writer has begun
        f.write(b"Obj\x01")
        f.flush()
        age(path, 0, now)
        assert poller.new_files(now) == []
        f.write(b"more bytes")
        f.flush()
        age(path, 0, now + 1)
        assert poller.new_files(now + 1) == []  # it grew
        assert poller.new_files(now + 2) == []  # unchanged, but changed 1 s ago
    assert poller.new_files(now + 3.5) == [("settlement", str(path))]  # 2.5 s unchanged
    assert poller.new_files(now + 10) == []  # read once


def test_a_file_renamed_into_place_is_read_at_the_next_listing(tmp_path):
    landing = landing_with(tmp_path)
    now = 1_900_000_000.0
    poller = LandingPoller(str(landing), poll_interval=0.1, settle_seconds=2)
    hidden = write_avro(landing / "settlement" / ".a.avro", "settlement",
                        [settlement("r1", utc(2023, 3, 6, 2))])
    age(hidden, 60, now)
    assert poller.new_files(now) == [] and poller.new_files(now + 1) == []  # dot-names are in progress
    hidden.rename(landing / "settlement" / "a.avro")
    assert poller.new_files(now + 2) == []  # first sight
    assert poller.new_files(now + 2.1) == [("settlement", str(landing / "settlement" / "a.avro"))]


def test_a_file_changed_after_it_was_read_is_read_again(tmp_path):
    """Item 9: "… and never re-reads it once complete"."""
    landing = landing_with(tmp_path)
    now = 1_900_000_000.0
    poller = LandingPoller(str(landing), poll_interval=0.1, settle_seconds=2)
    path = landing / "settlement" / "a.avro"
    path.write_bytes(b"Obj\x01 half")
    age(path, 5, now)
    poller.new_files(now)
    assert poller.new_files(now + 0.1) == [("settlement", str(path))]
    path.write_bytes(b"Obj\x01 half and the rest")  # the writer had paused
    age(path, 3, now + 1)
    assert poller.new_files(now + 1) == []
    assert poller.new_files(now + 1.1) == [("settlement", str(path))]


@pytest.mark.parametrize("target", ["file", "missing"])
def test_symbolic_links_are_followed_or_delivered_to_become_dead_letters(tmp_path, target):
    """Item 9: "Symlinks: follow them or dead-letter them, never skip silently"."""
    landing = landing_with(tmp_path)
    now = 1_900_000_000.0
    real = write_avro(tmp_path / "elsewhere" / "real.avro", "settlement",
                      [settlement("l1", utc(2023, 3, 6, 2))])
    link = landing / "settlement" / "link.avro"
    link.symlink_to(real if target == "file" else tmp_path / "nowhere.avro")
    age(link, 10, now)
    if target == "file":
        age(real, 10, now)
    poller = LandingPoller(str(landing), poll_interval=0.1, settle_seconds=2)
    poller.new_files(now)
    assert poller.new_files(now + 0.1) == [("settlement", str(link))]


def test_a_missing_landing_directory_is_one_line_and_exit_2(tmp_path, capsys):
    """Review probe: `yibao stream --landing /nonexistent --drain` exited 0
    having read nothing, so a typo in the path looked like an empty backfill."""
    from pipelines import cli

    missing = tmp_path / "no-such-landing"
    assert cli.main(["stream", "--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}",
                     "--landing", str(missing), "--drain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"yibao stream: --landing {missing}: no such directory (expected "
                   "<landing>/<stream>/*.avro); create it, or fix the path"]
    assert not (tmp_path / "w.duckdb").exists()
