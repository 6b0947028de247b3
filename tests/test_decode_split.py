"""Issue 17 "Scale-out": "splittable reads: a large Avro file is read by
block ranges, so the largest file does not set the decode time."

Real Avro files (fastavro) with many small blocks and a tiny ``split_bytes``
are planned into several ranges (transforms/decode.py ``plan_ranges``); reading
the ranges must give EXACTLY what reading the whole file gives — the rows with
their ``_source`` / ``_index`` and the dead letters (sources, errors, payloads)
— for intact and damaged files alike.
"""
from __future__ import annotations

import copy
from pathlib import Path

import apache_beam as beam
import fastavro
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

import schemas
from tests.test_decode import blocks_of, fake_record, rows, write_avro
from transforms.decode import (
    SPLIT_BYTES,
    DeadLetter,
    FileRange,
    ReadStream,
    iter_avro_batches,
    plan_ranges,
)

SPLIT = 4096  # bytes: a file of 40 blocks of 5 records is some ten ranges
NS_TIMESTAMP = 1_700_000_000_000_000_000  # nanoseconds where the contract says milliseconds


def read(path: Path, tmp_path: Path, stream: str, span: FileRange | None = None, batch_rows: int = 7):
    """(rows, dead letters as dicts) of the whole file or of one range."""
    kwargs = span._asdict() if span else {"path": str(path)}
    items = list(iter_avro_batches(stream=stream, quarantine_dir=str(tmp_path / "q"),
                                   batch_rows=batch_rows, **kwargs))
    dead = [i.as_dict() for i in items if isinstance(i, DeadLetter)]
    return rows([i for i in items if not isinstance(i, DeadLetter)]), dead


def assert_split_read_is_the_whole_read(path: Path, tmp_path: Path, stream: str, split=SPLIT):
    """Plan, read every range, compare with the unsplit read; return the plan."""
    plan = plan_ranges(str(path), stream, split)
    whole_rows, whole_dead = read(path, tmp_path, stream, batch_rows=100)
    split_rows, split_dead = [], []
    for span in plan:
        got_rows, got_dead = read(path, tmp_path, stream, span)
        split_rows += got_rows
        split_dead += got_dead
    assert sorted(split_rows, key=lambda r: r["_index"]) == whole_rows
    assert split_dead == whole_dead
    return plan, whole_rows, whole_dead


def assert_ranges_cut_at_block_starts(plan: list[FileRange], ends: list[int], counts: list[int]):
    """Each range starts at a block start with that block's number and the
    file's record index of its first record; together they cover the file."""
    assert len(plan) > 1
    assert plan[0].start_offset == ends[0] and plan[0].first_block == plan[0].first_index == 0
    for span, following in zip(plan, plan[1:]):
        assert following.start_offset == ends[span.first_block + span.max_blocks]
        assert following.first_block == span.first_block + span.max_blocks
        assert following.first_index == sum(counts[: following.first_block])
    assert plan[-1].max_blocks is None  # the last range reads to the end of the file


def test_split_bytes_default_is_64_mib():
    assert SPLIT_BYTES == 64 * 2**20


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_intact_file_read_by_ranges_is_the_whole_file(tmp_path, codec):
    """fastavro's own writer with a small sync_interval: many blocks."""
    records = [fake_record("settlement", i) for i in range(300)]
    path = tmp_path / "big.avro"
    with open(path, "wb") as f:
        fastavro.writer(f, schemas.load("settlement").parsed, records, codec=codec, sync_interval=600)

    plan, got, dead = assert_split_read_is_the_whole_read(path, tmp_path, "settlement")

    assert len(plan) >= 4 and dead == []
    assert [r["_index"] for r in got] == list(range(300))
    assert [{k: v for k, v in r.items() if k not in ("_source", "_index")} for r in got] == records
    assert {r["_source"] for r in got} == {str(path)}
    starts = [s.start_offset for s in plan]
    assert starts == sorted(starts) and all(s.first_index > 0 for s in plan[1:])


def test_ranges_start_at_block_starts_with_the_exact_record_index(tmp_path):
    """Blocks of varying record counts: a range's first_index is not a multiple of anything."""
    blocks = [[fake_record("settlement", 100 * b + i) for i in range(1 + b % 6)] for b in range(40)]
    path = tmp_path / "uneven.avro"
    ends = write_avro(path, schemas.load("settlement").avro, blocks)

    plan, got, _ = assert_split_read_is_the_whole_read(path, tmp_path, "settlement", split=2000)

    assert_ranges_cut_at_block_starts(plan, ends, [len(b) for b in blocks])
    assert [r["setl_id"] for r in got] == [r["setl_id"] for r in sum(blocks, [])]


def test_poison_block_in_a_middle_range_is_the_same_dead_letter(tmp_path):
    """Block 21's timestamp is in nanoseconds: that block alone is a dead
    letter, numbered in the file (``#block=21``), in a range that is not
    the first nor the last."""
    blocks = blocks_of("settlement", 40, 5)
    blocks[21][2] = {**blocks[21][2], "setl_time": NS_TIMESTAMP}
    path = tmp_path / "poison.avro"
    ends = write_avro(path, schemas.load("settlement").avro, blocks)

    plan, got, dead = assert_split_read_is_the_whole_read(path, tmp_path, "settlement")

    assert_ranges_cut_at_block_starts(plan, ends, [5] * 40)
    holder = next(s for s in plan if s.first_block <= 21 < s.first_block + (s.max_blocks or 99))
    assert holder not in (plan[0], plan[-1])
    assert [d["source"] for d in dead] == [f"{path}#block=21"]
    assert Path(dead[0]["quarantine_path"]).read_bytes() == path.read_bytes()[ends[21]:ends[22]]
    assert [r["_index"] for r in got] == [*range(105), *range(110, 200)]


@pytest.mark.parametrize("damage", ["bad sync marker", "cut in a block"])
def test_broken_framing_in_the_middle_is_the_same_dead_letter_to_eof(tmp_path, damage):
    """Planning stops at block 25's broken framing; the last range reads on
    from its start and makes the one dead letter ``#block=25`` holding the
    bytes from block 25 to the end of the file, as the unsplit read does."""
    blocks = blocks_of("settlement_list", 40, 5)
    path = tmp_path / "broken.avro"
    ends = write_avro(path, schemas.load("settlement_list").avro, blocks)
    data = bytearray(path.read_bytes())
    if damage == "bad sync marker":
        data[ends[26] - 1] ^= 0xFF  # the last byte of block 25's sync marker
    else:
        data = data[: (ends[25] + ends[26]) // 2]
    path.write_bytes(bytes(data))

    plan, got, dead = assert_split_read_is_the_whole_read(path, tmp_path, "settlement_list", split=1000)

    assert len(plan) > 3 and plan[-1].max_blocks is None
    assert plan[-1].start_offset <= ends[25] and plan[-1].first_block > 0
    assert [d["source"] for d in dead] == [f"{path}#block=25"]
    assert Path(dead[0]["quarantine_path"]).read_bytes() == bytes(data[ends[25]:])
    assert [r["_index"] for r in got] == list(range(125))


@pytest.mark.parametrize("kind", ["bad magic", "unresolvable schema"])
def test_whole_file_dead_letter_stays_one_dead_letter(tmp_path, kind):
    """A large file whose header is not accepted is planned as one range."""
    path = tmp_path / "whole.avro"
    if kind == "bad magic":
        path.write_bytes(b"psn_no,insutype\n" * 2000)
    else:
        schema = copy.deepcopy(schemas.load("settlement").avro)
        next(f for f in schema["fields"] if f["name"] == "insutype")["type"] = "int"
        write_avro(path, schema, [[{**fake_record("settlement", 10 * b + i), "insutype": 310}
                                   for i in range(5)] for b in range(40)])

    plan, got, dead = assert_split_read_is_the_whole_read(path, tmp_path, "settlement")

    assert path.stat().st_size > 4 * SPLIT
    assert plan == [FileRange(str(path))] and got == []
    assert [d["source"] for d in dead] == [str(path)] and dead[0]["size"] == path.stat().st_size


def test_read_stream_reads_a_large_file_as_several_ranges_on_the_local_runner(tmp_path):
    """The Beam pipeline: a ``settlement_ranges`` counter shows the split; the
    rows and dead letters are those of reading each file whole."""
    landing = tmp_path / "settlement"
    landing.mkdir()
    blocks = blocks_of("settlement", 40, 5)
    blocks[7][0] = {**blocks[7][0], "setl_time": NS_TIMESTAMP}
    write_avro(landing / "big.avro", schemas.load("settlement").avro, blocks)
    damaged = blocks_of("settlement", 30, 5)
    ends = write_avro(landing / "damaged.avro", schemas.load("settlement").avro, damaged)
    data = bytearray((landing / "damaged.avro").read_bytes())
    data[ends[21] - 1] ^= 0xFF  # block 20's sync marker
    (landing / "damaged.avro").write_bytes(bytes(data))
    write_avro(landing / "small.avro", schemas.load("settlement").avro, blocks_of("settlement", 1, 3))
    (landing / "junk.avro").write_bytes(b"not avro" * 2000)

    expected_rows, expected_dead = [], []
    for path in sorted(landing.iterdir()):
        got, dead = read(path, tmp_path, "settlement")
        expected_rows += got
        expected_dead += dead
    plans = {p.name: len(plan_ranges(str(p), "settlement", SPLIT)) for p in landing.iterdir()}
    assert plans["big.avro"] > 3 and plans["damaged.avro"] > 2
    assert plans["small.avro"] == plans["junk.avro"] == 1
    planned = sum(plans.values())

    p = beam.Pipeline(runner=FnApiRunner())
    result = p | ReadStream("settlement", str(landing / "*.avro"), str(tmp_path / "q"), split_bytes=SPLIT)
    assert_that(result.batches | beam.FlatMap(lambda b: b.to_pylist()), equal_to(expected_rows), label="Rows")
    assert_that(result.dead_letters, equal_to(expected_dead), label="DeadLetters")
    run = p.run()
    run.wait_until_finish()

    counters = run.metrics().query(MetricsFilter().with_name("settlement_ranges"))["counters"]
    assert sum(c.committed for c in counters) == planned
    assert [Path(d["source"]).name for d in expected_dead] == [
        "big.avro#block=7", "damaged.avro#block=20", "junk.avro"]
