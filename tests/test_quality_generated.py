"""Quality verdicts on generated data (issue: data quality, acceptance):
the failing keys of every rule are exactly the ones the generator corrupted
(truth.json), and no personal data reaches the warehouse or a DEBUG log."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import subprocess
import sys

import fastavro
import pytest

from pipelines import nightly
from warehouse.duckdb_store import connect

KEY = "test-pseudonym-key-of-at-least-32-bytes"  # not the suite's (tests/conftest.py)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    data = tmp_path_factory.mktemp("gen")
    subprocess.run([sys.executable, "-m", "datagen", "--out", str(data), "--seed", "5",
                    "--persons", "3000"], check=True, capture_output=True)
    wh = tmp_path_factory.mktemp("wh") / "w.duckdb"
    log_path = wh.parent / "debug.log"
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    mp = pytest.MonkeyPatch()
    mp.setenv("YIBAO_PSEUDONYM_KEY", KEY)
    from transforms.privacy import pseudonym_key

    pseudonym_key.cache_clear()
    try:
        as_of = (data / "as_of.txt").read_text().strip()
        nightly.run(["--input", str(data), "--warehouse", f"duckdb:///{wh}", "--as-of", as_of,
                     "--months", "2023-01..2023-12"])
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
        mp.undo()
        pseudonym_key.cache_clear()
    return data, wh, log_path


def _pseudonym(psn_no: str) -> str:
    return hmac.new(KEY.encode(), psn_no.encode(), hashlib.sha256).hexdigest()


def test_failing_keys_equal_the_generators_truth(generated):
    data, wh, _ = generated
    truth = json.loads((data / "truth.json").read_text(encoding="utf-8"))["rules"]
    con = connect(str(wh), read_only=True)
    try:
        rows = con.sql("SELECT rule_id, record_key FROM quality_failures").fetchall()
    finally:
        con.close()
    got: dict[str, set] = {}
    for rule, key in rows:
        got.setdefault(rule, set()).add(key)
    for rule, spec in truth.items():
        if spec["stream"] == "enrolment":
            expected = {f"{_pseudonym(p)}|{t}" for p, t in spec["keys"]}
        else:
            expected = set(spec["keys"])
        assert expected, f"{rule}: the generator injected no violation"
        assert got.get(rule, set()) == expected, rule
    assert set(got) == set(truth), "no rule fails where the generator corrupted nothing"


def _personal_values(data) -> dict[str, set[str]]:
    found = {"certno": set(), "psn_name": set(), "psn_no": set()}
    for path in data.glob("*/*.avro"):
        try:
            with path.open("rb") as fh:
                for rec in fastavro.reader(fh):
                    for field, values in found.items():
                        if rec.get(field):
                            values.add(rec[field])
        except Exception:  # noqa: BLE001 - the generator's deliberately broken files
            continue
    return found


def _warehouse_text(wh) -> str:
    con = connect(str(wh), read_only=True)
    parts = []
    try:
        tables = [t for (t,) in con.sql("SELECT table_name FROM information_schema.tables").fetchall()]
        for t in tables:
            cols = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_name = ?", [t]).fetchall()]
            sel = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
            for row in con.sql(f"SELECT {sel} FROM {t}").fetchall():
                parts.extend(v for v in row if v is not None)
    finally:
        con.close()
    return "\n".join(parts)


def _leaks(text: str, values: dict[str, set[str]]) -> dict[str, set[str]]:
    digits = set(re.findall(r"[0-9Xx]{10,}", text))
    cjk = set(re.findall(r"[\u3400-\u9fff\u3000-\u303f·]+", text))
    return {
        "certno": {v for v in values["certno"] if v in text} if len(values["certno"]) < 50
        else values["certno"] & digits | {v for v in values["certno"] if any(v in d for d in digits)},
        "psn_no": {v for v in values["psn_no"] if any(v in d for d in digits)},
        "psn_name": {v for v in values["psn_name"] if any(v in run for run in cjk)},
    }


def test_no_personal_data_in_the_warehouse_or_the_debug_log(generated):
    data, wh, log_path = generated
    values = _personal_values(data)
    assert all(len(v) > 100 for v in values.values())
    # A generated name can coincide with public reference text (贺兰 is a county):
    # such a string proves nothing either way, so it is not searched for.
    public = "".join(p.read_text(encoding="utf-8") for p in (data / "reference").glob("*.csv"))
    values["psn_name"] = {n for n in values["psn_name"] if n not in public}
    warehouse_leaks = _leaks(_warehouse_text(wh), values)
    assert warehouse_leaks == {"certno": set(), "psn_no": set(), "psn_name": set()}
    log_text = log_path.read_text(encoding="utf-8")
    assert "DEBUG" in log_text  # the run really logged at DEBUG level
    assert _leaks(log_text, values) == {"certno": set(), "psn_no": set(), "psn_name": set()}
