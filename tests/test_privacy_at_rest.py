"""Personal data at rest, run bookkeeping and the pseudonym key (issue 14,
items 5, 6, 8 and 10): real DuckDB files, real Avro files, the real nightly
pipeline on the local runner, real second processes holding the lock."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time

import duckdb
import pyarrow as pa
import pytest
from stdnum.cn import ric

from pipelines import cli, nightly
from pipelines.errors import UsageError
from tests.builders import copy_reference, enrolment, resident_id, utc, write_avro
from tests.builders import warehouse_rows as rows
from tests.conftest_bigquery import PROJECT, bigquery_emulator, bigquery_endpoint  # noqa: F401
from transforms import privacy, shards
from transforms.quarantine import quarantine
from transforms.staging import remove, sweep_staging
from warehouse import DuckDBWarehouse, Scope, open_warehouse
from warehouse.duckdb_store import connect

AS_OF = "2023-03-31T23:59:59+08:00"
MONTHS = "2023-01..2023-03"
BIRTH = dt.date(1980, 5, 17)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)



# --- two sibling input roots, one warehouse (items 5, 6, 10) --------------------------


def _landing(root, certno: str | None = None):
    copy_reference(root)
    people = [enrolment("PSN-1", utc(2023, 2, 1, 2))]
    if certno:  # fails E04: brdy one day off the date certno encodes
        people.append(enrolment("PSN-2", utc(2023, 2, 1, 2), certno=certno,
                                brdy=BIRTH + dt.timedelta(days=1)))
    write_avro(root / "enrolment" / "a.avro", "enrolment", people)
    (root / "enrolment" / "junk.avro").write_bytes(b"not Avro: " + root.name.encode())
    return root


@pytest.fixture(scope="module")
def siblings(tmp_path_factory):
    """``…/p_text_avro`` then ``…/p_text`` published into one warehouse."""
    base = tmp_path_factory.mktemp("in")
    certno = resident_id("640104", BIRTH, 321)
    avro_root = _landing(base / "p_text_avro")
    text_root = _landing(base / "p_text", certno)
    wh = tmp_path_factory.mktemp("wh") / "w.duckdb"
    for root in (avro_root, text_root):
        nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF,
                     "--months", MONTHS, "--no_alerts", "--allow-empty", "all"])
    return {"wh": wh, "avro_root": avro_root, "text_root": text_root, "certno": certno}


def test_dead_letters_of_a_sibling_root_survive(siblings):
    """dead_letters scope is a bare string prefix: a run on `…/p_text` deletes
    the rows of a sibling root `…/p_text_avro`. Compare path components."""
    sources = [s for (s,) in rows(siblings["wh"], "SELECT source FROM dead_letters ORDER BY 1")]
    assert sources == [str(siblings["text_root"] / "enrolment" / "junk.avro"),
                       str(siblings["avro_root"] / "enrolment" / "junk.avro")]


def test_scope_under_matches_whole_path_components(tmp_path):
    """``%`` and ``_`` in a root are plain characters; only the root itself and
    paths below it are in scope."""
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.ensure_schema([])
    root = "/in/p_%_x"
    sources = ["/in/p_%_x", "/in/p_%_x/a.avro#block=1", "/in/p_%_x_avro/a.avro",
               "/in/pa%bx/a.avro", "/in/p_%_xy", "/in"]
    letters = pa.Table.from_pylist([
        {"stream": "enrolment", "source": s, "error": "e", "size": 0, "sha256": "0" * 64,
         "quarantine_path": "q", "received_at": dt.datetime.now(dt.UTC)} for s in sources])
    wh.begin_run("r1", "nightly", "test", dt.datetime.now(dt.UTC), None)
    wh.publish("r1", {"dead_letters": letters}, {"dead_letters": Scope(everything=True)})
    wh.begin_run("r2", "nightly", "test", dt.datetime.now(dt.UTC), None)
    wh.publish("r2", {}, {"dead_letters": Scope(under={"source": root + "/"})})
    left = [r[0] for r in wh.con.execute("SELECT source FROM dead_letters ORDER BY 1").fetchall()]
    wh.close()
    assert left == sorted(sources[2:])
    with pytest.raises(ValueError, match="below the top"):
        Scope(under={"source": "/"})


def test_quarantine_files_are_private_and_staging_is_gone(siblings):
    """Personal data at rest: quarantine files are 0644 inside the warehouse
    directory; staging stays forever after a crash. Now 0600 in 0700 folders,
    and a finished run leaves no staging folder."""
    qdir = siblings["wh"].parent / "quarantine"
    files = list(qdir.rglob("*.bin"))
    assert len(files) == 2
    for f in files:
        assert mode(f) == 0o600, f
        assert mode(f.parent) == 0o700 and mode(qdir) == 0o700
    staging = siblings["wh"].parent / "staging"
    assert mode(staging) == 0o700
    assert list(staging.iterdir()) == []


@pytest.fixture
def usual_umask():
    old = os.umask(0o022)  # with it FileSystems.create left files 0644, folders 0755
    yield
    os.umask(old)


def test_staged_batches_and_quarantined_bytes_are_0600_in_0700_folders(tmp_path, usual_umask):
    staging = tmp_path / "wh" / "staging" / "run-1"
    path = shards.write(pa.table({"certno": ["640104198005170011"]}), str(staging / "enrolment" / "3"))
    assert mode(path) == 0o600
    for d in (staging / "enrolment" / "3", staging / "enrolment", staging, staging.parent):
        assert mode(d) == 0o700, d
    (tmp_path / "q").mkdir(mode=0o755)
    (tmp_path / "q" / "enrolment").mkdir(mode=0o755)  # left open by an earlier version
    old = tmp_path / "q" / "enrolment" / f"{hashlib.sha256(b'a').hexdigest()}.bin"
    old.write_bytes(b"a")
    old.chmod(0o644)
    dl = quarantine(str(tmp_path / "q"), "enrolment", "src", "err", b"a")
    assert dl.quarantine_path == str(old)
    assert mode(old) == 0o600 and mode(old.parent) == 0o700
    remove(str(staging))
    assert not staging.exists()


def test_e04_details_cannot_rebuild_the_id(siblings):
    """The certno mask hides exactly the birth date while E04 failure details
    include brdy: mask so that the two together do not rebuild an ID."""
    certno = siblings["certno"]
    (details,) = [json.loads(d) for (d,) in rows(
        siblings["wh"], "SELECT details FROM quality_failures WHERE rule_id = 'E04'")]
    assert details["certno"] == certno[:6] + "*" * 12
    assert not {certno[14:], certno[10:]} & {str(v) for v in details.values()}
    # Even knowing the birth date exactly (brdy, or brdy's neighbours) and the
    # sex (gend, the parity of character 17), 500 IDs fit what is shown.
    shown = details["certno"]
    fits = []
    for seq in range(1000):
        body = f"{shown[:6]}{BIRTH:%Y%m%d}{seq:03d}"
        candidate = body + ric.calc_check_digit(body + "0")
        if all(s in ("*", c) for s, c in zip(shown, candidate, strict=True)) and \
                seq % 2 == (1 if details.get("gend", "1") == "1" else 0):
            fits.append(candidate)
    assert certno in fits and len(fits) >= 500


def test_mask_keeps_the_region_code_and_the_length():
    assert privacy.mask_certno("640104198005170011") == "640104************"
    assert privacy.mask_certno("64010419800517") == "640104********"  # too short: E01 says why
    assert privacy.mask_certno("6401041980") == "**********"
    assert privacy.mask_certno(None) is None


# --- killed runs: abandoned rows, swept staging (item 6) ------------------------------


def _runs(wh, now):
    """A killed nightly (25 h), a live one (1 h), a streaming job (48 h), a
    finished one (30 h)."""
    wh.begin_run("killed", "nightly", "t", now - dt.timedelta(hours=25), None)
    wh.begin_run("live", "nightly", "t", now - dt.timedelta(hours=1), None)
    wh.begin_run("stream", "stream", "t", now - dt.timedelta(hours=48), None)
    wh.begin_run("done", "nightly", "t", now - dt.timedelta(hours=30), None)
    wh.finish_run("done", finished_at=now - dt.timedelta(hours=29))


def test_a_killed_runs_row_becomes_abandoned(tmp_path):
    """a killed run's row stays `running` forever: stale `running` rows become
    `abandoned` (WAREHOUSE.md)."""
    now = dt.datetime.now(dt.UTC)
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        wh.ensure_schema([])
        _runs(wh, now)
        assert wh.abandon_stale_runs(dt.timedelta(hours=24)) == ["killed"]
        assert wh.abandon_stale_runs(dt.timedelta(hours=24)) == []
        got = dict((r[0], r[1:]) for r in wh.con.execute(
            "SELECT run_id, status, finished_at IS NOT NULL, error FROM pipeline_runs").fetchall())
        assert wh.run_statuses(["killed", "live", "nope"]) == {"killed": "abandoned",
                                                               "live": "running"}
    assert got["killed"][:2] == ("abandoned", True) and "abandoned" in got["killed"][2]
    assert got["live"][0] == got["stream"][0] == "running"
    assert got["done"][0] == "succeeded"


def test_next_run_sweeps_the_staging_a_killed_run_left(tmp_path):
    """After a crash, `<warehouse dir>/staging/<run_id>/*.parquet` (raw certno,
    psn_name, psn_no) stays forever: the next run sweeps it."""
    now = dt.datetime.now(dt.UTC)
    staging = tmp_path / "staging"
    for run in ("killed", "live", "done", "other-warehouse", "old-debris"):
        (staging / run / "enrolment").mkdir(parents=True)
        (staging / run / "enrolment" / "x.parquet").write_bytes(b"PAR1")
    day_ago = time.time() - 25 * 3600
    os.utime(staging / "old-debris", (day_ago, day_ago))
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        wh.ensure_schema([])
        _runs(wh, now)
        wh.abandon_stale_runs(dt.timedelta(hours=24))
        removed = sweep_staging(str(staging), wh.run_statuses, max_age_hours=24)
    assert removed == ["done", "killed", "old-debris"]
    assert sorted(p.name for p in staging.iterdir()) == ["live", "other-warehouse"]
    assert sweep_staging(str(tmp_path / "absent"), wh.run_statuses, 24) == []


def test_run_max_age_is_a_parameter():
    from pipelines.config import load_config

    assert load_config().parameters["run_max_age_hours"] == 24


@pytest.fixture
def bq(bigquery_endpoint):  # noqa: F811 - the imported fixture
    from tests.conftest_bigquery import new_dataset

    with open_warehouse(f"bigquery://{PROJECT}/{new_dataset()}") as wh:
        wh.ensure_schema([])
        yield wh


def test_bigquery_abandons_stale_runs_and_scopes_by_path_component(bq):
    now = dt.datetime.now(dt.UTC)
    _runs(bq, now)
    assert bq.abandon_stale_runs(dt.timedelta(hours=24)) == ["killed"]
    assert bq.abandon_stale_runs(dt.timedelta(hours=24)) == []
    assert bq.run_statuses(["killed", "live", "stream", "done", "nope"]) == {
        "killed": "abandoned", "live": "running", "stream": "running", "done": "succeeded"}
    letters = pa.Table.from_pylist([
        {"stream": "enrolment", "source": s, "error": "e", "size": 0, "sha256": "0" * 64,
         "quarantine_path": "q", "received_at": now}
        for s in ["/in/p_text/a.avro", "/in/p_text_avro/a.avro"]])
    bq.publish("done", {"dead_letters": letters}, {"dead_letters": Scope(everything=True)})
    bq.publish("live", {}, {"dead_letters": Scope(under={"source": "/in/p_text"})})
    left = [r[0] for r in bq._rows(f"SELECT source FROM {bq._t('dead_letters')}")]
    assert left == ["/in/p_text_avro/a.avro"]


# --- the write lock (item 8) ------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[3] == "r")  # `yibao query` reads
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def _hold(path, seconds: float, how: str = "r") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds), how],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


@pytest.fixture
def warehouse_file(tmp_path):
    path = tmp_path / "w.duckdb"
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema([])
    return path


def test_writer_waits_for_a_reader_that_lets_go(warehouse_file):
    """An idle `yibao query` session holding the DuckDB file makes the nightly
    fail at once: wait for the lock with a bounded retry."""
    proc = _hold(warehouse_file, 2)
    try:
        start = time.monotonic()
        with DuckDBWarehouse(warehouse_file, lock_wait=30) as wh:
            waited = time.monotonic() - start
            wh.begin_run("r", "nightly", "t", dt.datetime.now(dt.UTC), None)
    finally:
        proc.wait()
    assert 1 < waited < 20


def test_nightly_names_who_holds_the_lock(warehouse_file, tmp_path, monkeypatch, capsys):
    """…and say who holds it: one line, exit status 2, the holder's PID and command."""
    root = tmp_path / "in"
    copy_reference(root)
    monkeypatch.setenv("YIBAO_LOCK_WAIT_SECONDS", "1")
    proc = _hold(warehouse_file, 60)
    try:
        start = time.monotonic()
        code = cli.main(["nightly", "--input", str(root), "--warehouse",
                         f"duckdb:///{warehouse_file}", "--as-of", AS_OF, "--months", MONTHS])
        took = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith(f"yibao nightly: the warehouse {warehouse_file} is locked by "
                          f"PID {proc.pid} ("), err
    assert "duckdb.connect(sys.argv[1]" in err and "YIBAO_LOCK_WAIT_SECONDS" in err
    assert took < 30


def test_a_reader_still_fails_at_once(warehouse_file):
    proc = _hold(warehouse_file, 60, how="w")
    try:
        start = time.monotonic()
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            connect(str(warehouse_file), read_only=True, lock_wait=30).close()
        assert time.monotonic() - start < 5
    finally:
        proc.kill()
        proc.wait()


# --- the pseudonym key (item 10) ---------------------------------------------------------


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    privacy.pseudonym_key.cache_clear()
    yield monkeypatch
    privacy.pseudonym_key.cache_clear()


@pytest.mark.parametrize("key, said", [
    (None, "YIBAO_PSEUDONYM_KEY is not set"),
    ("k", "YIBAO_PSEUDONYM_KEY is 1 bytes long"),
    (privacy.DEMO_KEY, "YIBAO_PSEUDONYM_KEY is the public demo key"),
    # Both were accepted (a secret file's trailing newline, a blank value):
    (privacy.DEMO_KEY + "\n", "YIBAO_PSEUDONYM_KEY is the public demo key"),
    (" " * 40, "YIBAO_PSEUDONYM_KEY is 0 bytes long"),
])
def test_a_run_refuses_a_missing_short_or_public_key(no_key, key, said):
    """With the public demo key a production run proceeds and 27 of 29
    pseudonyms were reversed by trying 3,000 IDs; a one-character key is
    accepted. Outside `yibao demo` refuse to run without a key of at least 32 bytes."""
    if key:
        no_key.setenv(privacy.KEY_ENV, key)
    with pytest.raises(UsageError) as e:
        privacy.require_key(allow_demo=False)
    assert str(e.value).startswith(said)
    assert "at least 32 bytes" in str(e.value) and "openssl rand -hex 32" in str(e.value)
    assert "--allow-demo-key" in str(e.value) and "\n" not in str(e.value)


def test_no_silent_fallback_to_the_demo_key(no_key):
    with pytest.raises(RuntimeError, match="YIBAO_PSEUDONYM_KEY is missing"):
        privacy.pseudonymise("PSN-1")


def test_allow_demo_key_puts_the_demo_key_in_the_environment(no_key, caplog):
    with caplog.at_level(logging.WARNING, logger="transforms.privacy"):
        privacy.require_key(allow_demo=True)
    assert os.environ[privacy.KEY_ENV] == privacy.DEMO_KEY  # inherited by worker processes
    assert "public demo key" in caplog.text
    worker = subprocess.run([sys.executable, "-c", "from transforms.privacy import pseudonymise;"
                             " print(pseudonymise('PSN-1'))"], capture_output=True, text=True,
                            check=True)
    assert worker.stdout.strip() == privacy.pseudonymise("PSN-1")
    no_key.setenv(privacy.KEY_ENV, "k" * 31)
    with pytest.raises(UsageError, match="31 bytes long"):  # a key that is set must be real
        privacy.require_key(allow_demo=True)


def test_a_dataflow_launcher_leaves_the_key_to_the_workers(no_key):
    """The image names the secret; worker_boot.sh reads it on each worker and
    pseudonym_key() refuses a missing or short one there."""
    no_key.setenv(privacy.SECRET_ENV, "projects/p/secrets/yibao-pseudonym-key/versions/latest")
    privacy.require_key()
    with pytest.raises(RuntimeError, match="missing or shorter than 32 bytes"):
        privacy.pseudonymise("PSN-1")


def test_a_real_key_is_accepted(no_key):
    no_key.setenv(privacy.KEY_ENV, "x" * 32)
    privacy.require_key()
    assert privacy.pseudonym_key() == b"x" * 32


def test_nightly_without_a_key_stops_before_recording_a_run(no_key, tmp_path, capsys):
    root = tmp_path / "in"
    copy_reference(root)
    wh = tmp_path / "w.duckdb"
    code = cli.main(["nightly", "--input", str(root), "--warehouse", f"duckdb:///{wh}",
                     "--as-of", AS_OF, "--months", MONTHS])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("yibao nightly: YIBAO_PSEUDONYM_KEY is not set"), err
    assert not wh.exists()
