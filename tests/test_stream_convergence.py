"""The stream converges to the nightly numbers (issue 11, acceptance).

One seeded random data set — settlements with corrections (some moving to
another day or region), reversals, settlement lists before and after their
settlement and after their 30 days, contributions uploaded on time or not,
filing cases opened and later completed or rejected, records failing
blocking and quality rules — is written to Avro files for the nightly job
and streamed, shuffled and with duplicates, through the streaming job.
The watermark advances while the data arrives (records come late, within
the allowed lateness), early panes fire in between.  At the end every
streamed flow indicator's MONTH value equals the nightly one for every
region and month, and the DAY values add up to the MONTH.
"""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import pytest

from pipelines import nightly
from tests.builders import (
    D,
    case,
    contribution,
    copy_reference,
    enrolment,
    institution,
    reversal,
    settlement,
    settlement_list,
    write_avro,
)
from tests.test_stream import Script, message, run_stream, start_of
from transforms.decode import read_avro_file
from transforms.streaming import event_time
from transforms.streaming_compute import STREAMED_CODES
from transforms.timeutil import business_date
from warehouse.duckdb_store import connect

SEED = 20231
DAYS = [dt.date(2023, 1, 30), dt.date(2023, 1, 31), dt.date(2023, 2, 1), dt.date(2023, 2, 2),
        dt.date(2023, 2, 14), dt.date(2023, 3, 1)]
COUNTIES = ["640104", "640105", "640106", "640202", "640302"]
OTHER_PROVINCE = "110105"
MATTERS = ["ENROL", "OFFSITE_FILING", "MANUAL_REIMB", "TRANSFER", "MATERNITY_REIMB", "ASSIST_REIMB"]


def at(rng: random.Random, day: dt.date) -> dt.datetime:
    """A random instant of the Asia/Shanghai business day."""
    return start_of(day) + dt.timedelta(seconds=rng.randrange(24 * 3600))


def make_data(rng: random.Random) -> dict[str, list[dict]]:
    data: dict[str, list[dict]] = defaultdict(list)
    for i in range(48):
        day = rng.choice(DAYS)
        county = rng.choice(COUNTIES)
        insured = OTHER_PROVINCE if rng.random() < 0.1 else county
        # An institution in another province (the first few: so that I22 has cases).
        inst_region = "120101" if i < 3 or rng.random() < 0.1 else county
        k = rng.choice([1, 2, 3])
        hifmi = D(50) if rng.random() < 0.2 else D(0)
        s = settlement(
            f"s{i}", at(rng, day), insu_admdvs=insured, fix_blng_admdvs=inst_region,
            fixmedins_code=institution(inst_region) if inst_region in COUNTIES else f"H{inst_region}00001",
            insutype=rng.choice(["310", "390"]),
            med_type="2101" if i < 3 else rng.choice(["2101", "2101", "1101", "1401"]),
            setl_type=rng.choice(["1", "2", "2"]), pay_method=rng.choice(["DRG", "DIP", "ITEM"]),
            smart_audit=rng.random() < 0.7, assist_grp=rng.choice(["NONE", "NONE", "TEKUN", "DIBAO"]),
            medfee_sumamt=D(1000 * k), inscp_scp_amt=D(800 * k), hifp_pay=D(600 * k),
            hifmi_pay=hifmi, maf_pay=D(rng.choice([0, 30])), fund_pay_sumamt=D(640 * k) + hifmi)
        if rng.random() < 0.1:
            s["psn_cash_pay"] = D(1)  # fails T04 (quality)
        if rng.random() < 0.05:
            s["med_type"] = "99"  # fails T02 (blocking)
        s["event_time"] = s["setl_time"] + dt.timedelta(minutes=rng.randrange(1, 600))
        data["settlement"].append(s)
        if rng.random() < 0.25:  # a correction, sometimes moving the settlement
            moved = at(rng, rng.choice(DAYS)) if rng.random() < 0.4 else s["setl_time"]
            v2 = dict(s, event_id=f"{s['event_id']}-v2", setl_time=moved,
                      event_time=max(s["event_time"], moved) + dt.timedelta(hours=2),
                      smart_audit=not s["smart_audit"], insu_admdvs=rng.choice([insured, county]))
            data["settlement"].append(v2)
            s = v2
        if rng.random() < 0.15:  # a reversal on a later day
            later = [d for d in DAYS if d > business_date(s["setl_time"])] or [DAYS[-1]]
            data["settlement"].append(reversal(s, f"r{i}", at(rng, rng.choice(later))))
        for _ in range(rng.choice([0, 1, 1, 2])):  # lists: early, on time, or after 30 days
            upload = s["setl_time"] + dt.timedelta(days=rng.choice([-1, 1, 5, 29, 40]),
                                                   minutes=rng.randrange(600))
            data["settlement_list"].append(settlement_list(s["setl_id"], upload))
    for _ in range(24):
        clct = at(rng, rng.choice(DAYS))
        data["contribution"].append(contribution(
            clct, clct + dt.timedelta(days=rng.choice([0, 0, 1, 2]), minutes=30),
            insu_admdvs=rng.choice(COUNTIES)))
    for i in range(24):
        submitted = at(rng, rng.choice(DAYS[:4]))
        fields = dict(matter_code=rng.choice(MATTERS), insu_admdvs=rng.choice(COUNTIES),
                      channel=rng.choice(["ONLINE", "MOBILE", "WINDOW", "KIOSK"]),
                      cross_province=rng.random() < 0.3)
        opened = case(f"c{i}", submitted, None, event_time=submitted, **fields)
        data["filing"].append(opened)
        if rng.random() < 0.8:  # completed or rejected later
            done = submitted + dt.timedelta(days=rng.choice([0, 1, 13]), hours=3)
            data["filing"].append(dict(
                opened, event_id=f"{opened['event_id']}-done", event_time=done, completed_time=done,
                status=rng.choice(["COMPLETED", "COMPLETED", "REJECTED"]),
                rating=rng.choice([None, 2, 4, 5])))
    for i in range(4):
        data["enrolment"].append(enrolment(f"p{i}", at(rng, DAYS[0])))
    return data


def safe_watermark(records, data) -> dict[str, dt.datetime]:
    """event_id -> the earliest day start any copy of that record can change
    (its own day, and the days of every version of the settlement it belongs
    to or reverses): the watermark never passes that while it is pending, so
    nothing is later than the allowed lateness."""
    setl_days = defaultdict(set)
    for s in data["settlement"]:
        setl_days[s["setl_id"]].add(business_date(s["setl_time"]))
    earliest = {}
    for stream, rec in records:
        days = {business_date(event_time(stream, rec))}
        if stream == "settlement":
            days |= setl_days[rec["setl_id"]] | setl_days.get(rec["init_setl_id"], set())
        elif stream == "settlement_list":
            days |= setl_days[rec["setl_id"]]
        earliest[rec["event_id"]] = start_of(min(days))
    return earliest


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    rng = random.Random(SEED)
    data = make_data(rng)
    root = tmp_path_factory.mktemp("input")
    copy_reference(root)
    for stream, recs in data.items():
        write_avro(root / stream / "all.avro", stream, recs)
    nightly_wh = tmp_path_factory.mktemp("nightly") / "warehouse.duckdb"
    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{nightly_wh}",
                 "--as-of", "2023-06-30T23:59:59+08:00", "--months", "2023-01..2023-06"])

    records = [(stream, rec) for stream, recs in data.items() for rec in recs]
    deliveries = records + rng.sample(records, len(records) // 5)  # at-least-once: duplicates
    rng.shuffle(deliveries)
    earliest = safe_watermark(records, data)
    script = Script(start_of(DAYS[0]) - dt.timedelta(days=3))
    watermark = start_of(DAYS[0]) - dt.timedelta(days=3)
    chunk = len(deliveries) // 4 + 1
    for n in range(0, len(deliveries), chunk):
        script.send(*[message(s, r) for s, r in deliveries[n:n + chunk]])
        pending = [earliest[r["event_id"]] for _, r in deliveries[n + chunk:]]
        # Up to three days past the earliest pending day: late, within the lateness.
        target = min(pending) + dt.timedelta(days=3) if pending else None
        if target and target > watermark:
            watermark = target
            script.watermark(watermark)
        script.tick()
    out = run_stream(script.end(), tmp_path_factory.mktemp("stream"))
    return out, nightly_wh, len(deliveries) - len(records)


def _values(path, where: str, *params) -> dict:
    con = connect(str(path), read_only=True)
    try:
        rows = con.execute(
            f"""SELECT indicator_code, region_code, period_type, period_start, numerator, denominator
                FROM indicator_values WHERE {where}""", list(params)).fetchall()
    finally:
        con.close()
    return {tuple(r[:4]): (r[4], r[5]) for r in rows}


def assert_months_equal(nightly_wh, stream_wh) -> dict:
    """Every streamed indicator's MONTH (numerator, denominator), every region
    and month the nightly job wrote: the stream's value, or 0/0 where the
    stream had nothing to fire.  Returns the nightly values."""
    codes = list(STREAMED_CODES)
    marks = ", ".join("?" for _ in codes)
    night = _values(nightly_wh, f"period_type = 'MONTH' AND indicator_code IN ({marks})", *codes)
    stream = _values(stream_wh, "period_type = 'MONTH' AND pipeline = 'stream'")
    assert stream, "the stream wrote no MONTH values"
    assert set(stream) <= set(night)
    zero = (0, 0)
    mismatches = {k: (stream.get(k, zero), v) for k, v in night.items() if stream.get(k, zero) != v}
    assert not mismatches
    return night


def test_month_values_equal_the_nightly_ones(converged):
    out, nightly_wh, _ = converged
    night = assert_months_equal(nightly_wh, out.warehouse)
    # Not a vacuous comparison: every streamed indicator has non-zero months.
    assert {k[0] for k, v in night.items() if v != (0, 0)} == set(STREAMED_CODES)


def test_day_values_add_up_to_the_month(converged):
    out, _, _ = converged
    days = _values(out.warehouse, "period_type = 'DAY' AND pipeline = 'stream'")
    months = _values(out.warehouse, "period_type = 'MONTH' AND pipeline = 'stream'")
    summed: dict = defaultdict(lambda: [0, 0])
    for (code, region, _, start), (num, den) in days.items():
        acc = summed[(code, region, "MONTH", start.replace(day=1))]
        acc[0] += num
        acc[1] += den
    assert {k: tuple(v) for k, v in summed.items()} == months


def test_duplicates_counted_once(converged):
    out, _, duplicates = converged
    con = connect(str(out.warehouse), read_only=True)
    try:
        rows = con.execute("SELECT sum(read), sum(accepted), sum(duplicates), sum(dead_lettered), "
                           "sum(late_dropped) FROM pipeline_run_streams WHERE run_id = ?",
                           [out.run_id]).fetchone()
    finally:
        con.close()
    read, accepted, dups, dead, late = rows
    assert (dups, dead, late) == (duplicates, 0, 0)
    assert read == accepted + dups


def test_generated_data_converges(tmp_path):
    """The same with the generator's data (one month, its delivery faults):
    its files decoded by the nightly decoder, their records streamed."""
    from datagen.generate import generate

    root = tmp_path / "input"
    generate(str(root), seed=11, persons=100, months="2023-03..2023-03")
    nightly_wh = tmp_path / "nightly.duckdb"
    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{nightly_wh}",
                 "--as-of", "2023-12-31T00:00:00+08:00", "--months", "2022-01..2023-12"])
    records = []
    for path in sorted(root.glob("*/*.avro")):
        batches, _, _ = read_avro_file(str(path), path.parent.name, str(tmp_path / "q"))
        records += [(path.parent.name, {k: v for k, v in r.items() if not k.startswith("_")})
                    for b in batches for r in b.to_pylist()]
    rng = random.Random(SEED)
    deliveries = records + rng.sample(records, len(records) // 10)
    rng.shuffle(deliveries)
    script = Script(min(r["event_time"] for _, r in records) - dt.timedelta(days=400))
    step = len(deliveries) // 3 + 1
    for n in range(0, len(deliveries), step):
        script.send(*[message(s, r) for s, r in deliveries[n:n + step]]).tick()
    out = run_stream(script.end(), tmp_path / "stream")
    night = assert_months_equal(nightly_wh, out.warehouse)
    assert any(v != (0, 0) for v in night.values())
