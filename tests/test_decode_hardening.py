"""Issue 14, items 3 and 9: poison values, every Avro codec under schema
resolution, and what counts as a landed file (hidden names, symlinks).

Item 3: "Poison values stop everything. One settlement whose
timestamp-millis value is in nanoseconds fails the whole nightly
(`ConversionException … Timestamp(MS) to Timestamp(US)`) … Every value
outside what the contract's logical types can represent … makes its block a
dead letter in batch … with the accounting still balancing."

Item 9: "zstandard and lz4 containers are dead-lettered whole, and a snappy
file whose writer schema adds one defaulted field is dead-lettered too."

Every file here is a real Avro container written by fastavro (or framed by
hand, ``frame``, where a test needs a codec payload fastavro does not make).
"""
from __future__ import annotations

import bz2
import copy
import datetime as dt
import hashlib
import io
import json
import lzma
import zlib
from pathlib import Path

import apache_beam as beam
import cramjam
import fastavro
import pyarrow as pa
import pytest
import zstandard
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

import schemas
from pipelines import nightly
from tests.builders import copy_reference, settlement, utc
from tests.builders import write_avro as write_records
from tests.test_decode import write_avro as write_blocks
from tests.test_decode import zigzag
from transforms.decode import ReadStream, read_avro_file, table_schema
from warehouse.duckdb_store import connect

NS_TIMESTAMP = 1_700_000_000_000_000_000  # 2023-11-14 in nanoseconds, read as milliseconds
MAX_DATE = 2**31 - 1  # days since 1970: no calendar holds it
FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
FIRST_DAY, LAST_DAY = -719_162, 2_932_896  # 0001-01-01, 9999-12-31


def blocks_file(path: Path, stream: str, blocks: list[list[dict]], schema: dict | None = None,
                codec: str = "deflate") -> list[int]:
    """One container block per list; returns [end of header, end of block 0, …]."""
    return write_blocks(path, schema or schemas.load(stream).avro, blocks, codec)


def letters_ok(dead, path: Path, stream: str):
    """Each dead letter's quarantined bytes are the file's bytes it names."""
    data = path.read_bytes()
    for letter in dead:
        raw = Path(letter.quarantine_path).read_bytes()
        assert letter.stream == stream and len(raw) == letter.size
        assert hashlib.sha256(raw).hexdigest() == letter.sha256 and raw in data


def rows(batches) -> list[dict]:
    return pa.Table.from_batches(batches).to_pylist() if batches else []


# --- item 3: poison values in a container file ---------------------------------

@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
@pytest.mark.parametrize("field,value", [
    ("setl_time", NS_TIMESTAMP), ("setl_time", LAST_MS + 1), ("setl_time", FIRST_MS - 1),
    ("begndate", MAX_DATE), ("begndate", LAST_DAY + 1), ("begndate", FIRST_DAY - 1),
])
def test_poison_value_dead_letters_its_block_and_the_rest_of_the_file_decodes(
        tmp_path, fast, field, value):
    """Item 3: a value outside years 1-9999 makes its block one dead letter."""
    good = [settlement(f"g{i}", utc(2023, 3, 6, 2 + i)) for i in range(5)]
    poison = dict(settlement("p", utc(2023, 3, 6, 9)), **{field: value})
    path = tmp_path / "poison.avro"
    ends = blocks_file(path, "settlement", [good[:2], [poison, good[2]], good[3:]])

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)

    assert n == 4 and [r["setl_id"] for r in rows(batches)] == ["g0", "g1", "g3", "g4"]
    assert [r["_index"] for r in rows(batches)] == [0, 1, 4, 5]  # indices in the file
    assert len(dead) == 1 and dead[0].source == f"{path}#block=1"
    assert field in dead[0].error or not fast  # the fast path names the field
    assert Path(dead[0].quarantine_path).read_bytes() == path.read_bytes()[ends[1]:ends[2]]
    letters_ok(dead, path, "settlement")


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
def test_the_first_and_last_representable_instants_and_days_decode(tmp_path, fast):
    edges = [dict(settlement(f"e{i}", utc(2023, 3, 6, 2)), setl_time=t, begndate=d)
             for i, (t, d) in enumerate([(FIRST_MS, FIRST_DAY), (LAST_MS, LAST_DAY)])]
    path = tmp_path / "edges.avro"
    blocks_file(path, "settlement", [edges])

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)

    assert dead == [] and n == 2
    got = rows(batches)
    assert [r["setl_time"] for r in got] == [dt.datetime(1, 1, 1, tzinfo=dt.UTC),
                                             dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)]
    assert [r["begndate"] for r in got] == [dt.date(1, 1, 1), dt.date(9999, 12, 31)]


def test_undecodable_block_in_the_middle_is_its_own_dead_letter(tmp_path):
    """A block whose framing is intact (count, size, sync) but whose data
    does not decode no longer takes the rest of the file with it."""
    blocks = [[settlement(f"u{b}{i}", utc(2023, 3, 6, 2)) for i in range(3)] for b in range(4)]
    path = tmp_path / "mid.avro"
    ends = blocks_file(path, "settlement", blocks, codec="null")
    data = bytearray(path.read_bytes())
    start, stop = ends[1] + 8, ends[2] - 16 - 8  # inside block 1's records: count and size hold
    data[start:stop] = b"\xff" * (stop - start)
    path.write_bytes(bytes(data))

    for fast in (True, False):
        batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)
        assert n == 9 and [r["_index"] for r in rows(batches)] == [0, 1, 2, 6, 7, 8, 9, 10, 11]
        assert [d.source for d in dead] == [f"{path}#block=1"]
        assert Path(dead[0].quarantine_path).read_bytes() == bytes(data[ends[1]:ends[2]])


# --- item 3: the nightly run ---------------------------------------------------


@pytest.fixture(scope="module")
def poisoned_nightly(tmp_path_factory):
    """`ConversionException … Timestamp(MS) to Timestamp(US)`: one settlement
    in nanoseconds and one date of 2**31-1 days used to fail the run."""
    root = tmp_path_factory.mktemp("landing")
    copy_reference(root)
    d = root / "settlement"
    d.mkdir()
    good = [settlement(f"n{i}", utc(2023, 3, 6, 2 + i)) for i in range(6)]
    ns = dict(settlement("ns", utc(2023, 3, 6, 9)), setl_time=NS_TIMESTAMP)
    far = dict(settlement("far", utc(2023, 3, 6, 10)), enddate=MAX_DATE)
    blocks_file(d / "a.avro", "settlement", [good[:2], [ns], good[2:4], [far, good[4]]])
    write_records(d / "b.avro", "settlement", good[5:])
    warehouse = tmp_path_factory.mktemp("wh") / "w.duckdb"
    run_id = nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{warehouse}",
                          "--as-of", "2023-03-31T23:59:59+08:00", "--months", "2023-03",
                          "--no_alerts", "--allow-empty", "enrolment,contribution,settlement_list,filing"])
    return warehouse, run_id, d


def test_nightly_with_poison_values_succeeds_and_balances(poisoned_nightly):
    warehouse, run_id, d = poisoned_nightly
    con = connect(str(warehouse), read_only=True)
    try:
        status, = con.execute("SELECT status FROM pipeline_runs WHERE run_id = ?", [run_id]).fetchone()
        counts = con.execute("""SELECT read, accepted, duplicates, dead_lettered
            FROM pipeline_run_streams WHERE run_id = ? AND stream = 'settlement'""",
                             [run_id]).fetchone()
        sources = [s for (s,) in con.execute("SELECT source FROM dead_letters ORDER BY source").fetchall()]
        i08 = con.execute("""SELECT numerator, denominator FROM indicator_values
            WHERE indicator_code = 'I08' AND region_code = '640104' AND period_type = 'MONTH'
              AND pipeline = 'nightly'""").fetchall()
    finally:
        con.close()
    assert status == "succeeded"
    read, accepted, dups, dead = counts
    assert (read, accepted, dups, dead) == (7, 5, 0, 2)
    assert sources == [f"{d / 'a.avro'}#block=1", f"{d / 'a.avro'}#block=3"]
    assert i08 and i08[0][1] == accepted


# --- item 9: every codec, under schema resolution --------------------------------

SPEC_CODECS = ["null", "deflate", "snappy", "bzip2", "xz", "zstandard"]


def added_field_schema(stream: str) -> dict:
    """A newer writer: the contract plus one defaulted field."""
    schema = copy.deepcopy(schemas.load(stream).avro)
    schema["fields"].insert(4, {"name": "hilist_code", "type": "string", "default": ""})
    return schema


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
@pytest.mark.parametrize("writer", ["contract", "added_field"])
@pytest.mark.parametrize("codec", [*SPEC_CODECS, "lz4"])
def test_every_codec_decodes_to_the_contract_records(tmp_path, codec, writer, fast):
    """Item 9: "zstandard and lz4 containers are dead-lettered whole, and a
    snappy file whose writer schema adds one defaulted field is
    dead-lettered too"."""
    records = [settlement(f"c{i}", utc(2023, 3, 6, 2, i)) for i in range(7)]
    schema = added_field_schema("settlement") if writer == "added_field" else None
    written = [dict(r, hilist_code="X") for r in records] if schema else records
    path = tmp_path / f"{codec}.avro"
    blocks_file(path, "settlement", [written[:3], written[3:]], schema=schema, codec=codec)

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)

    assert dead == [] and n == 7
    assert all(b.schema == table_schema("settlement") for b in batches)
    assert rows(batches) == [dict(r, _source=str(path), _index=i) for i, r in enumerate(records)]


def frame(path: Path, stream: str, blocks: list[list[dict]], codec: str, compress) -> list[int]:
    """A container framed by hand (as a Java or Rust writer would): the
    contract schema, ``codec`` in the header, each block's records encoded by
    fastavro and compressed by ``compress``.  Returns the block ends."""
    sync = bytes(range(16))
    meta = {b"avro.schema": json.dumps(schemas.load(stream).avro).encode(), b"avro.codec": codec.encode()}
    out = bytearray(b"Obj\x01" + zigzag(len(meta)))
    for key, value in meta.items():
        out += zigzag(len(key)) + key + zigzag(len(value)) + value
    out += zigzag(0) + sync
    ends = [len(out)]
    for records in blocks:
        buf = io.BytesIO()
        for record in records:
            fastavro.schemaless_writer(buf, schemas.load(stream).parsed, record)
        data = compress(buf.getvalue())
        out += zigzag(len(records)) + zigzag(len(data)) + data + sync
        ends.append(len(out))
    path.write_bytes(bytes(out))
    return ends


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def _snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data)) + zlib.crc32(data).to_bytes(4, "big")


def _zstd_stream(data: bytes) -> bytes:
    """A zstd frame without the content size, as streaming writers (Java's
    ZstdOutputStream) make it."""
    c = zstandard.ZstdCompressor().compressobj()
    return c.compress(data) + c.flush()


COMPRESSORS = {
    "null": bytes, "deflate": _deflate, "snappy": _snappy, "bzip2": bz2.compress,
    "xz": lzma.compress, "zstandard": _zstd_stream,
    "lz4": lambda data: bytes(cramjam.lz4.compress_block(data)),  # size first, as lz4.block
}


@pytest.mark.parametrize("codec", list(COMPRESSORS))
def test_hand_framed_codecs_and_a_damaged_payload_is_its_own_dead_letter(tmp_path, codec):
    blocks = [[settlement(f"h{b}{i}", utc(2023, 3, 6, 2)) for i in range(4)] for b in range(3)]
    path = tmp_path / "framed.avro"
    frame(path, "settlement", blocks, codec, COMPRESSORS[codec])
    for fast in (True, False):
        _, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)
        assert dead == [] and n == 12

    # Block 1's payload cut in half (its size says so: the framing holds).
    half = lambda data: COMPRESSORS[codec](data)[: len(COMPRESSORS[codec](data)) // 2]  # noqa: E731
    payloads = iter([COMPRESSORS[codec], half, COMPRESSORS[codec]])
    ends = frame(path, "settlement", blocks, codec, lambda data: next(payloads)(data))
    for fast in (True, False):
        batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)
        assert n == 8 and [r["_index"] for r in rows(batches)] == [0, 1, 2, 3, 8, 9, 10, 11]
        assert [d.source for d in dead] == [f"{path}#block=1"]
        assert Path(dead[0].quarantine_path).read_bytes() == path.read_bytes()[ends[1]:ends[2]]


def test_snappy_block_failing_its_crc_is_a_dead_letter(tmp_path):
    """polars and fastavro skip the CRC-32 the spec puts after each block."""
    blocks = [[settlement(f"k{b}", utc(2023, 3, 6, 2))] for b in range(2)]
    bad_crc = iter([_snappy, lambda data: _snappy(data)[:-4] + b"\0\0\0\0"])
    path = tmp_path / "crc.avro"
    frame(path, "settlement", blocks, "snappy", lambda data: next(bad_crc)(data))
    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"))
    assert n == 1 and len(dead) == 1 and "CRC-32" in dead[0].error
    assert dead[0].source == f"{path}#block=1"


def test_unknown_codec_is_one_dead_letter_naming_it(tmp_path):
    path = tmp_path / "brotli.avro"
    frame(path, "settlement", [[settlement("b", utc(2023, 3, 6, 2))]], "brotli", bytes)
    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"))
    assert batches == [] and n == 0 and len(dead) == 1
    assert "unsupported codec 'brotli'" in dead[0].error and dead[0].source == str(path)
    assert Path(dead[0].quarantine_path).read_bytes() == path.read_bytes()


# --- item 9: which files of a landing folder are read (nightly) -------------------


def test_read_stream_follows_links_dead_letters_broken_ones_and_skips_dot_names(tmp_path):
    """Item 9: "Symlinks: follow them or dead-letter them, never skip silently"
    (Beam's own match drops a broken link without a word)."""
    folder = tmp_path / "settlement"
    folder.mkdir()
    records = [settlement(f"s{i}", utc(2023, 3, 6, 2)) for i in range(3)]
    write_records(folder / "a.avro", "settlement", records[:1])
    real = write_records(tmp_path / "elsewhere" / "b.avro", "settlement", records[1:])
    (folder / "linked.avro").symlink_to(real)
    (folder / "broken.avro").symlink_to(tmp_path / "gone.avro")
    write_records(folder / ".inflight.avro", "settlement", records)  # being written, by convention
    write_records(folder / "_tmp.avro", "settlement", records)

    with beam.Pipeline(runner=FnApiRunner()) as p:
        result = p | ReadStream("settlement", str(folder / "*.avro"), str(tmp_path / "q"))
        per_file = (result.batches
                    | "Rows" >> beam.FlatMap(lambda b: [(Path(s).name, 1) for s in b.column("_source").to_pylist()])
                    | "PerFile" >> beam.CombinePerKey(sum))
        assert_that(per_file, equal_to([("a.avro", 1), ("linked.avro", 2)]), label="Read")
        letters = result.dead_letters | beam.Map(lambda d: (Path(d["source"]).name, "cannot open" in d["error"]))
        assert_that(letters, equal_to([("broken.avro", True)]), label="DeadLetters")
