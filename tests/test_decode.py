"""transforms.decode: real Avro files written here, read back as the
normalised table; damaged and incompatible files become dead letters.

Decoding speed is measured by benchmarks/decode_throughput.py, not here.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import random
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import fastavro
import fastavro.write
import pyarrow as pa
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

import schemas
from transforms.decode import (
    DecodeAvroFile,
    ReadStream,
    decode_message,
    read_avro_file,
    table_schema,
)

SYNC = b"0123456789abcdef"
T0 = dt.datetime(2023, 11, 30, 16, 0, 0, 123000, tzinfo=dt.UTC)


def fake_record(stream: str, i: int) -> dict:
    """A contract record whose values vary with i: negative and extreme
    decimals, millisecond timestamps, nulls every third record, arrays."""
    record = {}
    for f in schemas.load(stream).avro["fields"]:
        name, typ = f["name"], f["type"]
        if isinstance(typ, list):
            if i % 3 == 0:
                record[name] = None
                continue
            typ = typ[1]
        logical = typ.get("logicalType") if isinstance(typ, dict) else None
        base = typ["type"] if isinstance(typ, dict) else typ
        if logical == "timestamp-millis":
            record[name] = T0 + dt.timedelta(milliseconds=7919 * i)
        elif logical == "date":
            record[name] = dt.date(2023, 1, 1) + dt.timedelta(days=i % 400)
        elif logical == "decimal":  # every 7th: the extreme of decimal(16,2)
            unscaled = 10**16 - 1 if i % 7 == 6 else i * 1_000_003 + 5
            record[name] = Decimal((-1) ** i * unscaled).scaleb(-2)
        elif base == "array":
            record[name] = [f"{name}{j}" for j in range(i % 3)]  # includes []
        elif base == "string":
            record[name] = f"{name}-{i}-医保"
        elif base == "boolean":
            record[name] = i % 2 == 0
        elif base == "int":
            record[name] = i % 5 + 1
        else:
            raise AssertionError(f"no fake value for {name}: {typ}")
    return record


def write_avro(path: Path, schema: dict, blocks: list[list[dict]], codec: str = "deflate") -> list[int]:
    """Write one Avro block per list of records; return the byte offsets
    [end of header, end of block 0, end of block 1, …]."""
    with open(path, "wb") as f:
        writer = fastavro.write.Writer(f, fastavro.parse_schema(schema), codec=codec, sync_marker=SYNC)
        ends = [f.tell()]
        for records in blocks:
            for record in records:
                writer.write(record)
            writer.flush()
            ends.append(f.tell())
    return ends


def zigzag(n: int) -> bytes:
    """Avro's long encoding."""
    n, out = (n << 1) ^ (n >> 63), bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def blocks_of(stream: str, n_blocks: int, per_block: int) -> list[list[dict]]:
    return [[fake_record(stream, b * per_block + i) for i in range(per_block)] for b in range(n_blocks)]


def rows(batches: list[pa.RecordBatch]) -> list[dict]:
    return pa.Table.from_batches(batches).to_pylist() if batches else []


def without_field(stream: str, field: str) -> dict:
    schema = copy.deepcopy(schemas.load(stream).avro)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    return schema


def assert_dead_letter(letter, stream: str, source: str, payload: bytes):
    assert letter.stream == stream
    assert letter.source == source
    assert letter.size == len(payload)
    assert letter.sha256 == hashlib.sha256(payload).hexdigest()
    assert Path(letter.quarantine_path).name == f"{letter.sha256}.bin"
    assert Path(letter.quarantine_path).parent.name == stream
    assert Path(letter.quarantine_path).read_bytes() == payload


# --- good files ---------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
@pytest.mark.parametrize("stream", schemas.STREAM_NAMES)
def test_good_file_round_trip(tmp_path, stream, fast):
    blocks = blocks_of(stream, 3, 10)
    path = tmp_path / "good.avro"
    write_avro(path, schemas.load(stream).avro, blocks)

    batches, dead, n = read_avro_file(str(path), stream, str(tmp_path / "q"), batch_rows=15, fast=fast)

    assert dead == [] and n == 30
    assert all(b.schema == table_schema(stream) for b in batches)
    expected = [
        {**r, "_source": str(path), "_index": i} for i, r in enumerate(sum(blocks, []))
    ]
    assert rows(batches) == expected


@pytest.mark.parametrize("stream", schemas.STREAM_NAMES)
@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_fast_and_fastavro_paths_give_identical_tables(tmp_path, stream, codec):
    path = tmp_path / "good.avro"
    write_avro(path, schemas.load(stream).avro, blocks_of(stream, 4, 50), codec)
    fast, _, _ = read_avro_file(str(path), stream, str(tmp_path / "q"), fast=True)
    slow, _, _ = read_avro_file(str(path), stream, str(tmp_path / "q"), fast=False)
    assert pa.Table.from_batches(fast).equals(pa.Table.from_batches(slow), check_metadata=True)


def test_empty_avro_file_with_contract_schema_has_no_records_and_no_dead_letter(tmp_path):
    path = tmp_path / "empty.avro"
    write_avro(path, schemas.load("settlement").avro, [])
    assert read_avro_file(str(path), "settlement", str(tmp_path / "q")) == ([], [], 0)


# --- schema evolution ---------------------------------------------------------


def test_older_writer_schema_without_a_nullable_field_reads_null(tmp_path):
    old = without_field("settlement", "init_setl_id")
    blocks = blocks_of("settlement", 2, 10)
    for record in sum(blocks, []):
        record.pop("init_setl_id")
    path = tmp_path / "old.avro"
    write_avro(path, old, blocks)

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"))

    assert dead == [] and n == 20
    table = pa.Table.from_batches(batches)
    assert table.schema == table_schema("settlement")
    assert table.column("init_setl_id").null_count == 20
    assert table.column("setl_id").to_pylist() == [r["setl_id"] for r in sum(blocks, [])]


def test_newer_writer_schema_with_an_extra_field_is_read(tmp_path):
    new = copy.deepcopy(schemas.load("settlement").avro)
    new["fields"].insert(3, {"name": "hilist_code", "type": "string", "default": ""})
    blocks = [[{**fake_record("settlement", i), "hilist_code": "X"} for i in range(10)]]
    path = tmp_path / "new.avro"
    write_avro(path, new, blocks)

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"))

    assert dead == [] and n == 10
    assert rows(batches) == [
        {**fake_record("settlement", i), "_source": str(path), "_index": i} for i in range(10)
    ]


def _int_insutype():
    schema = copy.deepcopy(schemas.load("settlement").avro)
    next(f for f in schema["fields"] if f["name"] == "insutype")["type"] = "int"
    return schema, {"insutype": 310}


def _missing_setl_id():
    return without_field("settlement", "setl_id"), {}


def _nullable_psn_no():
    schema = copy.deepcopy(schemas.load("settlement").avro)
    next(f for f in schema["fields"] if f["name"] == "psn_no")["type"] = ["null", "string"]
    return schema, {}


def _money_scale_4():
    schema = copy.deepcopy(schemas.load("settlement").avro)
    next(f for f in schema["fields"] if f["name"] == "hifp_pay")["type"]["scale"] = 4
    return schema, {}


@pytest.mark.parametrize("n_records", [0, 5])
@pytest.mark.parametrize(
    "make_schema,message",
    [
        (_int_insutype, "field insutype: writer type int cannot be read as string"),
        (_missing_setl_id, "field setl_id: missing in the writer schema and has no default"),
        (_nullable_psn_no, "field psn_no: writer type null cannot be read as string"),
        (_money_scale_4, "field hifp_pay: writer logical type"),
    ],
)
def test_incompatible_writer_schema_is_one_dead_letter_even_when_empty(
    tmp_path, make_schema, message, n_records
):
    schema, override = make_schema()
    names = {f["name"] for f in schema["fields"]}
    records = [
        {k: v for k, v in {**fake_record("settlement", i), **override}.items() if k in names}
        for i in range(1, n_records + 1)  # from 1: psn_no is never null
    ]
    path = tmp_path / "bad_schema.avro"
    write_avro(path, schema, [records] if records else [])

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"))

    assert batches == [] and n == 0 and len(dead) == 1
    assert message in dead[0].error
    assert_dead_letter(dead[0], "settlement", str(path), path.read_bytes())


# --- files that are not (intact) Avro -----------------------------------------


@pytest.mark.parametrize(
    "content", [b"", b"Obj", b"psn_no,insutype\nP1,310\n"], ids=["0-bytes", "short", "csv"]
)
def test_non_avro_file_is_one_dead_letter_with_its_bytes(tmp_path, content):
    path = tmp_path / "x.avro"
    path.write_bytes(content)
    batches, dead, n = read_avro_file(str(path), "filing", str(tmp_path / "q"))
    assert batches == [] and n == 0 and len(dead) == 1
    assert "not an Avro object container file" in dead[0].error
    assert_dead_letter(dead[0], "filing", str(path), content)


def test_damaged_header_is_one_dead_letter(tmp_path):
    path = tmp_path / "x.avro"
    write_avro(path, schemas.load("filing").avro, blocks_of("filing", 1, 3))
    data = path.read_bytes()[:40]  # cut inside the metadata map
    path.write_bytes(data)
    batches, dead, _ = read_avro_file(str(path), "filing", str(tmp_path / "q"))
    assert batches == [] and len(dead) == 1 and "damaged Avro header" in dead[0].error
    assert_dead_letter(dead[0], "filing", str(path), data)


def test_missing_file_is_one_dead_letter(tmp_path):
    path = str(tmp_path / "nowhere.avro")
    batches, dead, _ = read_avro_file(path, "filing", str(tmp_path / "q"))
    assert batches == [] and len(dead) == 1 and "cannot open" in dead[0].error
    assert_dead_letter(dead[0], "filing", path, b"")


@pytest.mark.parametrize("batch_rows", [1, 100])  # a decode per block / one for all
@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
def test_truncated_file_reads_complete_blocks_and_dead_letters_the_rest(tmp_path, fast, batch_rows):
    blocks = blocks_of("settlement", 5, 10)
    path = tmp_path / "cut.avro"
    ends = write_avro(path, schemas.load("settlement").avro, blocks)
    cut = (ends[2] + ends[3]) // 2  # in the middle of the 3rd block
    path.write_bytes(path.read_bytes()[:cut])
    data = path.read_bytes()

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), batch_rows, fast)

    assert n == 20
    assert [r["event_id"] for r in rows(batches)] == [r["event_id"] for r in blocks[0] + blocks[1]]
    assert len(dead) == 1 and "end of file" in dead[0].error
    assert_dead_letter(dead[0], "settlement", f"{path}#block=2", data[ends[2]:])


@pytest.mark.parametrize("batch_rows", [1, 100])
@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
def test_bad_sync_marker_in_block_3_dead_letters_from_there_to_eof(tmp_path, fast, batch_rows):
    blocks = blocks_of("settlement_list", 5, 10)
    path = tmp_path / "sync.avro"
    ends = write_avro(path, schemas.load("settlement_list").avro, blocks)
    data = bytearray(path.read_bytes())
    data[ends[3] - 1] ^= 0xFF  # last byte of block 3's sync marker
    path.write_bytes(bytes(data))

    batches, dead, n = read_avro_file(str(path), "settlement_list", str(tmp_path / "q"), batch_rows, fast)

    assert n == 20 and [r["_index"] for r in rows(batches)] == list(range(20))
    assert len(dead) == 1 and "sync marker" in dead[0].error
    assert_dead_letter(dead[0], "settlement_list", f"{path}#block=2", bytes(data[ends[2]:]))


@pytest.mark.parametrize("batch_rows", [1, 100])
@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
def test_undecodable_record_damages_its_block_only(tmp_path, fast, batch_rows):
    """Block 3 holds a decimal beyond decimal(16,2); its framing is intact, so
    it alone is a dead letter (issue 14 item 3: "makes its block a dead
    letter") and blocks 4 and 5 are read."""
    contract = schemas.load("settlement").avro
    raw_money = copy.deepcopy(contract)  # same encoding, but lets us write any bytes
    next(f for f in raw_money["fields"] if f["name"] == "hifp_pay")["type"] = "bytes"
    blocks = blocks_of("settlement", 5, 10)
    for i, record in enumerate(sum(blocks, [])):
        money = record["hifp_pay"]
        unscaled = 10**17 if i == 24 else int(money * 100)
        record["hifp_pay"] = unscaled.to_bytes(16, "big", signed=True)
    path = tmp_path / "overflow.avro"
    ends = write_avro(path, raw_money, blocks)
    header_path = tmp_path / "header.avro"
    header_end = write_avro(header_path, contract, [])[0]
    # The contract's header (same sync marker) + the blocks.
    data = header_path.read_bytes()[:header_end] + path.read_bytes()[ends[0]:]
    path.write_bytes(data)
    block_3 = header_end + ends[2] - ends[0]
    block_4 = header_end + ends[3] - ends[0]

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), batch_rows, fast)

    assert n == 40 and [r["_index"] for r in rows(batches)] == [*range(20), *range(30, 50)]
    assert len(dead) == 1 and "undecodable block data" in dead[0].error
    assert_dead_letter(dead[0], "settlement", f"{path}#block=2", data[block_3:block_4])


@pytest.mark.parametrize("codec", ["null", "deflate"])
@pytest.mark.parametrize("fast", [True, False], ids=["polars", "fastavro"])
def test_absurd_block_count_is_damage_not_a_crash(tmp_path, fast, codec):
    """polars would allocate 2**40 decimals (16 TiB) and abort the process."""
    blocks = blocks_of("settlement", 5, 10)
    path = tmp_path / "count.avro"
    ends = write_avro(path, schemas.load("settlement").avro, blocks, codec)
    good = path.read_bytes()
    assert good[ends[2]] == zigzag(10)[0]
    data = good[: ends[2]] + zigzag(2**40) + good[ends[2] + 1 :]
    path.write_bytes(data)

    batches, dead, n = read_avro_file(str(path), "settlement", str(tmp_path / "q"), fast=fast)

    assert n == 20 and len(dead) == 1
    assert_dead_letter(dead[0], "settlement", f"{path}#block=2", data[ends[2]:])


def test_bzip2_file_is_read(tmp_path):
    path = tmp_path / "bz.avro"
    write_avro(path, schemas.load("filing").avro, blocks_of("filing", 2, 5), codec="bzip2")
    batches, dead, n = read_avro_file(str(path), "filing", str(tmp_path / "q"))
    assert dead == [] and n == 10


# --- Pub/Sub messages ---------------------------------------------------------


def test_decode_message_round_trip_and_rejects():
    record = fake_record("settlement", 4)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schemas.load("settlement").parsed, record)
    assert decode_message(buf.getvalue(), "settlement") == record

    with pytest.raises(ValueError, match="trailing bytes"):
        decode_message(buf.getvalue() + b"\x00", "settlement")
    with pytest.raises(ValueError, match="undecodable"):
        decode_message(buf.getvalue()[:20], "settlement")

    raw_money = copy.deepcopy(schemas.load("settlement").avro)
    next(f for f in raw_money["fields"] if f["name"] == "hifp_pay")["type"] = "bytes"
    buf = io.BytesIO()
    too_big = {**record, "hifp_pay": (10**17).to_bytes(8, "big", signed=True)}
    fastavro.schemaless_writer(buf, fastavro.parse_schema(raw_money), too_big)
    with pytest.raises(ValueError, match="does not fit"):
        decode_message(buf.getvalue(), "settlement")


# --- Beam ---------------------------------------------------------------------


def test_read_stream_on_the_local_runner(tmp_path):
    landing = tmp_path / "filing"
    landing.mkdir()
    write_avro(landing / "a.avro", schemas.load("filing").avro, blocks_of("filing", 3, 10))
    ends = write_avro(landing / "b.avro", schemas.load("filing").avro, blocks_of("filing", 2, 5))
    (landing / "b.avro").write_bytes((landing / "b.avro").read_bytes()[: ends[2] - 3])
    (landing / "c.avro").write_bytes(b"not avro")
    quarantine_dir = str(tmp_path / "q")

    # FnApiRunner explicitly: the DirectRunner may try to download Prism.
    with beam.Pipeline(runner=FnApiRunner()) as p:
        result = p | "ReadFiling" >> ReadStream("filing", str(landing / "*.avro"), quarantine_dir)
        counts = (
            result.batches
            | "Rows" >> beam.FlatMap(lambda b: [(Path(s).name, 1) for s in b.column("_source").to_pylist()])
            | "CountPerFile" >> beam.CombinePerKey(sum)
        )
        assert_that(counts, equal_to([("a.avro", 30), ("b.avro", 5)]), label="RecordsPerFile")
        sources = result.dead_letters | "Sources" >> beam.Map(lambda d: Path(d["source"]).name)
        assert_that(sources, equal_to(["b.avro#block=1", "c.avro"]), label="DeadLetterSources")

    # The DoFn alone also takes plain paths.
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = (
            p
            | beam.Create([str(landing / "a.avro")])
            | beam.ParDo(DecodeAvroFile("filing", quarantine_dir)).with_outputs("dead_letters", main="batches")
        )
        assert_that(out.batches | beam.Map(lambda b: b.num_rows), equal_to([30]), label="Rows")
        assert_that(out.dead_letters, equal_to([]), label="NoDeadLetters")


# --- robustness ---------------------------------------------------------------


@pytest.mark.parametrize("stream", ["settlement", "settlement_list"])
@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_random_damage_never_escapes(tmp_path, stream, codec):
    """Seeded random byte damage and truncation: every file ends as intact
    records in file order, a dead letter per damaged block (its bytes), and
    at most one more, last, holding a suffix of the file.  (polars-avro
    hangs and jetliner aborts the process on some of these.)"""
    rnd = random.Random(7)
    path = tmp_path / "f.avro"
    ends = write_avro(path, schemas.load(stream).avro, blocks_of(stream, 5, 10), codec)
    good = path.read_bytes()
    for _ in range(60):
        data = bytearray(good)
        for _ in range(rnd.choice([1, 2, 4])):
            data[rnd.randrange(ends[0], len(data))] = rnd.randrange(256)
        data = bytes(data[: rnd.choice([len(data), rnd.randrange(ends[0], len(data))])])
        path.write_bytes(data)
        for fast in (True, False):
            batches, dead, n = read_avro_file(str(path), stream, str(tmp_path / "q"), 20, fast)
            indices = [r["_index"] for r in rows(batches)]
            assert indices == sorted(set(indices)) and len(indices) == n
            payloads = [Path(d.quarantine_path).read_bytes() for d in dead]
            assert all(p in data for p in payloads)
            blocks = [d for d in dead if "undecodable block data" in d.error]
            assert dead[: len(blocks)] == blocks and len(dead) - len(blocks) <= 1
            if len(dead) > len(blocks):
                assert data.endswith(payloads[-1])
