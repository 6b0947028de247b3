"""The nightly pipeline end to end on the local runner, on hand-made Avro
files whose every figure is worked out below (issue: nightly pipeline,
acceptance "hand-made cases")."""
from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest

from pipelines import nightly
from tests.builders import (
    D,
    copy_reference,
    older_schema,
    reversal,
    settlement,
    utc,
    write_avro,
)
from warehouse.duckdb_store import DuckDBWarehouse, connect

AS_OF = "2023-03-31T23:59:59+08:00"
MONTHS = "2023-01..2023-03"


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    copy_reference(root)
    d = root / "settlement"
    s1 = settlement("s1", utc(2023, 1, 31, 23, 30))  # business date 1 February
    s2 = settlement("s2", utc(2023, 1, 10, 2))
    s4_v1 = settlement("s4", utc(2023, 1, 15, 2))
    s4_v2 = dict(s4_v1, event_id="ev-s4-v2", event_time=s4_v1["event_time"] + dt.timedelta(days=1),
                 insu_admdvs="640105", fix_blng_admdvs="640105",
                 fixmedins_code=settlement("x", utc(2023, 1, 1), fix_blng_admdvs="640105")["fixmedins_code"])
    s5 = settlement("s5", utc(2023, 1, 20, 2))
    r5 = reversal(s5, "r5", utc(2023, 2, 2, 2))
    s5b = settlement("s5b", utc(2023, 2, 3, 2))  # re-settlement under a new setl_id
    s6 = settlement("s6", utc(2023, 3, 5, 2))
    s6_late = dict(s6, event_id="ev-s6-v2", event_time=utc(2023, 4, 2), smart_audit=False)
    s7 = settlement("s7", utc(2023, 3, 31, 15), event_time=utc(2023, 4, 1, 1))  # after as_of
    s8 = settlement("s8", utc(2023, 1, 25, 2), psn_cash_pay=D(261))  # fails T04 (quality)
    s9 = settlement("s9", utc(2023, 1, 26, 2), smart_audit=False)
    s9_conflict = dict(s9, medfee_sumamt=D(999))
    s10 = settlement("s10", utc(2023, 3, 10, 2))
    s10.pop("dise_codg")
    trunc = [settlement(f"t{i}", utc(2023, 3, 12, 2), insu_admdvs="640106", fix_blng_admdvs="640106",
                        fixmedins_code=settlement("x", utc(2023, 1, 1), fix_blng_admdvs="640106")["fixmedins_code"])
             for i in range(1, 7)]

    write_avro(d / "a.avro", "settlement", [s4_v2])  # the correction sorts before its original
    write_avro(d / "b.avro", "settlement", [s1, s2, s4_v1, s5, s6, s6_late, s7, s8, s9])
    write_avro(d / "c.avro", "settlement", [copy.deepcopy(s2), r5, s5b])
    write_avro(d / "d_conflict.avro", "settlement", [s9_conflict])
    write_avro(d / "e_old.avro", "settlement", [s10], schema=older_schema("settlement", "dise_codg"))
    path = write_avro(d / "f_trunc.avro", "settlement", trunc, sync_interval=1)  # a block a record
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # cut inside the last block
    (d / "g_junk.avro").write_bytes(b"this is not an Avro file")
    return root


def run_nightly(root, warehouse):
    # Settlements only: the other streams are allowed to be empty on purpose.
    return nightly.run(["--allow-empty", "all", "--input", str(root),
                        "--warehouse", f"duckdb:///{warehouse}",
                        "--as-of", AS_OF, "--months", MONTHS])


@pytest.fixture(scope="module")
def warehouse(landing, tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    run_id = run_nightly(landing, path)
    return path, run_id


def components(path, code, region, period_type="MONTH", month=None):
    con = connect(str(path), read_only=True)
    try:
        rows = con.execute(
            """SELECT period_end, numerator, denominator FROM indicator_values
               WHERE indicator_code = ? AND region_code = ? AND period_type = ?
               ORDER BY period_end""", [code, region, period_type]).fetchall()
    finally:
        con.close()
    return {end.month: (num, den) for end, num, den in rows}


def test_settlement_components_per_county_and_month(warehouse):
    path, _ = warehouse
    # 640104: Jan s2 s5 s8 s9 (s8 fails T04); Feb s1 (23:30 UTC 31 Jan) r5 s5b; Mar s6 s10.
    assert components(path, "I08", "640104") == {1: (3, 4), 2: (3, 3), 3: (2, 2)}
    # Business settlements: s5 and its reversal r5 drop out; s9 has no smart audit.
    assert components(path, "I14", "640104") == {1: (2, 3), 2: (2, 2), 3: (2, 2)}
    assert components(path, "R01", "640104") == {1: (Decimal(1920), Decimal(2400)),
                                                 2: (Decimal(1280), Decimal(1600)),
                                                 3: (Decimal(1280), Decimal(1600))}
    # The correction moved s4 to 640105.
    assert components(path, "I08", "640105")[1] == (1, 1)
    assert components(path, "R01", "640105")[1] == (Decimal(640), Decimal(800))
    # The truncated file's five complete blocks count.
    assert components(path, "I08", "640106")[3] == (5, 5)
    # Roll-up adds components: the province's YTD to March.
    assert components(path, "I08", "640000", "YTD")[3] == (14, 15)
    assert components(path, "I08", "640100", "YTD")[3] == (14, 15)  # all three are in 银川
    assert components(path, "I08", "640200", "YTD")[3] == (0, 0)


def test_counts_reconcile_and_dead_letters_are_quarantined(warehouse):
    path, run_id = warehouse
    con = connect(str(path), read_only=True)
    try:
        read, accepted, dups, dead = con.execute(
            """SELECT read, accepted, duplicates, dead_lettered FROM pipeline_run_streams
               WHERE run_id = ? AND stream = 'settlement'""", [run_id]).fetchone()
        letters = con.execute("SELECT source, error, size, sha256, quarantine_path FROM dead_letters "
                              "ORDER BY source").fetchall()
        status = con.execute("SELECT status FROM pipeline_runs WHERE run_id = ?", [run_id]).fetchone()
    finally:
        con.close()
    assert (read, accepted, dups, dead) == (22, 18, 1, 3)
    assert read == accepted + dups + dead
    assert status == ("succeeded",)
    sources = [s for s, *_ in letters]
    assert any(s.endswith("d_conflict.avro#record=0") for s in sources)
    assert any("f_trunc.avro#block=" in s for s in sources)
    assert any(s.endswith("g_junk.avro") for s in sources)
    import hashlib
    from pathlib import Path

    for _, error, size, sha, qpath in letters:
        raw = Path(qpath).read_bytes()
        assert len(raw) == size and hashlib.sha256(raw).hexdigest() == sha and error


def _business_content(path):
    con = connect(str(path), read_only=True)
    out = {}
    try:
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables "
                                   "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall():
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [name]).fetchall()
                if c not in ("run_id", "computed_at", "received_at")]
            if name in ("pipeline_runs", "pipeline_run_streams", "dq_alerts"):
                continue  # logs of runs and of alerts raised: a re-run adds to them by design
            sel = ", ".join(f'"{c}"' for c in cols)
            out[name] = sorted(map(repr, con.execute(f"SELECT {sel} FROM {name}").fetchall()))
    finally:
        con.close()
    return out


def test_rerun_is_idempotent_and_restores_tampering(landing, tmp_path):
    path = tmp_path / "w.duckdb"
    run_nightly(landing, path)
    first = _business_content(path)
    con = connect(str(path))
    con.execute("UPDATE indicator_values SET numerator = 999 WHERE indicator_code = 'I08'")
    con.execute("DELETE FROM quality_failures")
    con.close()
    run_nightly(landing, path)
    assert _business_content(path) == first
    con = connect(str(path), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM pipeline_runs").fetchone() == (2, 2)
    con.close()


def test_failed_publish_leaves_previous_state(landing, tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    run_nightly(landing, path)
    before = _business_content(path)
    original = DuckDBWarehouse._write_table
    calls = []

    def explode(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:  # after the first table was written
            raise RuntimeError("injected sink failure")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(DuckDBWarehouse, "_write_table", explode)
    with pytest.raises(Exception, match="injected sink failure"):
        run_nightly(landing, path)
    monkeypatch.undo()
    assert _business_content(path) == before
    con = connect(str(path), read_only=True)
    statuses = [s for (s,) in con.execute("SELECT status FROM pipeline_runs ORDER BY started_at").fetchall()]
    con.close()
    assert statuses == ["succeeded", "failed"]


def test_multi_processing_runner_gives_the_same_figures(landing, warehouse, tmp_path):
    path = tmp_path / "mp.duckdb"
    nightly.run(["--input", str(landing), "--warehouse", f"duckdb:///{path}", "--as-of", AS_OF,
                 "--months", MONTHS, "--no_alerts", "--allow-empty", "all", "--direct_num_workers", "2",
                 "--direct_running_mode", "multi_processing"])
    for code in ("I08", "I14", "R01"):
        for region in ("640104", "640105", "640106", "640000"):
            assert components(path, code, region) == components(warehouse[0], code, region)
