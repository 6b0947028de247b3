"""Parity: the compiled SQL (``verdict_sql``) flags exactly the rows Great
Expectations flags (``ge_failures``), rule by rule, on the hand-made edge
cases of tests/test_expectations.py plus a few thousand random records per
stream — mostly plausible values mixed with broken ones, boundary amounts and
dates around midnight UTC+8, and a few nulls even where the contract forbids
them (so both paths provably agree on nulls too).
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

import expectations
from tests.test_expectations import (
    BASE,
    CASES,
    MONEY,
    REF,
    STREAMS,
    arrow_table,
    resident_id,
    sql_failures,
)

N_RANDOM = 2500
NULL_RATE = 0.004  # per field, nullable or not
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
LOCAL = [r.code for r in (*REF.counties, *REF.cities)] + [REF.province.code]
FOREIGN = ["110105", "310101", "440305", "110000", "650102"]
BAD_REGIONS = ["640199", "990000", "64", "", "6401040"]
INSTITUTIONS = [i["fixmedins_code"] for i in REF.institutions]
MATTERS = sorted({m["matter_code"] for m in REF.matters}) + ["UNKNOWN"]


def _instant(rng: random.Random) -> dt.datetime:
    """Mostly within a few minutes of midnight Asia/Shanghai (16:00 UTC)."""
    day = START + dt.timedelta(days=rng.randrange(90))
    if rng.random() < 0.6:
        return day + dt.timedelta(hours=16, seconds=rng.randint(-300, 300))
    return day + dt.timedelta(seconds=rng.randrange(86400))


def _near(rng: random.Random, day: dt.date) -> dt.date:
    return day + dt.timedelta(days=rng.choice([-400, -3, -1, -1, 0, 0, 0, 1, 1, 2]))


def _certno(rng: random.Random, pool: list[str], event_date: dt.date) -> str | None:
    if pool and rng.random() < 0.5:
        return rng.choice(pool)  # shared certnos make E09 duplicates
    prefix = rng.choice(["640104", "640102", "110105", "650102", "990101"])
    born = rng.choice([dt.date(1990, 1, 1), dt.date(2000, 2, 29), dt.date(1900, 1, 1), dt.date(1899, 12, 31),
                       event_date, event_date + dt.timedelta(days=1), dt.date(1985, 7, 15)])
    body = f"{prefix}{born:%Y%m%d}{rng.randrange(1000):03d}"
    if rng.random() < 0.05:
        body = body[:6] + rng.choice(["20230229", "19001301", "20240230"]) + body[14:]
    cid = resident_id(body)
    mutate = rng.random()
    if mutate < 0.08:
        return cid[:17] + rng.choice("0123456789X".replace(cid[17], ""))
    if mutate < 0.12:
        return rng.choice([cid[:17], cid + "1", cid.lower(), "６" + cid[1:], cid + "\n", " " + cid[1:]])
    return cid


def random_enrolment(rng: random.Random, pool: list[str]) -> dict:
    event = _instant(rng)
    event_date = (event + dt.timedelta(hours=8)).date()
    certno = _certno(rng, pool, event_date)
    pool.append(certno) if rng.random() < 0.1 else None
    born = None
    if certno and len(certno) >= 14 and certno[6:14].isascii() and certno[6:14].isdigit():
        try:
            born = dt.date(int(certno[6:10]), int(certno[10:12]), int(certno[12:14]))
        except ValueError:
            pass
    gend = rng.choice(["1", "2", "0", "9", "3"]) if rng.random() < 0.2 else (
        ("1" if int(certno[16]) % 2 else "2") if certno and len(certno) > 16 and certno[16].isdigit() else "1")
    name_chars = ["张", "三", "李", "A", "b", " ", "\u3000", "３", "5", "\x1c", "\x85", "\xa0", "·", "\u200b",
                  "𠀀", "\u0663"]
    name = "".join(rng.choice(name_chars[:4]) for _ in range(rng.choice([1, 2, 3, 3, 4, 30, 31])))
    if rng.random() < 0.2:
        pos = rng.choice([0, len(name) // 2, len(name)])
        name = name[:pos] + rng.choice(name_chars[4:]) + name[pos:]
    crt = _near(rng, event_date)
    return BASE["enrolment"](
        event_id=f"e{rng.randrange(10**9)}", event_time=event, psn_no=f"p{rng.randrange(10**6)}",
        psn_cert_type=rng.choice(["01"] * 8 + ["02", "17", "90", "99", "18", "1"]),
        certno=certno, psn_name=name, gend=gend,
        brdy=born if born and rng.random() < 0.85 else rng.choice([dt.date(1990, 1, 2), dt.date(2000, 2, 29)]),
        insutype=rng.choice(["310"] * 4 + ["390"] * 4 + ["391", "999"]),
        psn_insu_stas=rng.choice(["1"] * 6 + ["2", "4", "0", "3"]),
        insu_admdvs=rng.choice(LOCAL + FOREIGN[:2] + BAD_REGIONS[:2]),
        emp_no=rng.choice(["E1", "E2", "", " ", "\u3000", "\x1c", " E3 ", None]),
        crt_insu_date=crt,
        paus_insu_date=None if rng.random() < 0.6 else _near(rng, crt),
    )


def _money(rng: random.Random, sign: int) -> dict:
    cents = lambda hi: Decimal(rng.randrange(hi)) / 100  # noqa: E731
    parts = {"hifp_pay": cents(50000), "cvlserv_pay": cents(3000) if rng.random() < 0.3 else Decimal(0),
             "hifmi_pay": cents(3000) if rng.random() < 0.2 else Decimal(0), "maf_pay": Decimal(0)}
    fund = sum(parts.values()) + rng.choice([Decimal(0)] * 6 + [Decimal("0.01"), Decimal("-0.01"),
                                                                  Decimal("0.02"), Decimal("1")])
    rest = {"acct_pay": cents(5000), "acct_mulaid_pay": Decimal(0), "psn_cash_pay": cents(20000),
            "hosp_part_amt": Decimal(0)}
    total = fund + sum(rest.values()) + rng.choice([Decimal(0)] * 6 + [Decimal("0.01"), Decimal("-0.01"),
                                                                        Decimal("-0.02"), Decimal("5")])
    row = dict.fromkeys(MONEY, Decimal(0))
    row.update(parts, **rest, fund_pay_sumamt=fund, medfee_sumamt=total,
               inscp_scp_amt=total - rng.choice([Decimal(0), Decimal(0), cents(1000), Decimal("-0.01")]))
    row = {k: v * sign for k, v in row.items()}
    if rng.random() < 0.05:  # one amount with the wrong sign
        k = rng.choice(MONEY)
        row[k] = -row[k] if row[k] else Decimal("0.01") * -sign
    return row


def random_settlement(rng: random.Random) -> dict:
    setl = _instant(rng)
    setl_date = (setl + dt.timedelta(hours=8)).date()
    end = _near(rng, setl_date)
    reversal = rng.random() < 0.15
    med_type = rng.choice(["11", "1401", "140104", "2101", "21", "22", "52", "5212", "28", "41",
                           "99", "2", "2101011", "1", "２１"])
    return BASE["settlement"](
        event_id=f"e{rng.randrange(10**9)}", event_time=setl, setl_id=f"s{rng.randrange(10**9)}",
        insutype=rng.choice(["310", "390", "391", "300"]),
        insu_admdvs=rng.choice(LOCAL + FOREIGN + BAD_REGIONS),
        fix_blng_admdvs=rng.choice(LOCAL[:-1] * 2 + FOREIGN + BAD_REGIONS),
        fixmedins_code=rng.choice(INSTITUTIONS * 3 + ["H64010499999", "P11010500009", "X64010400001",
                                                        "H6401040000", "H６4010400001", "H64010400001\n"]),
        med_type=med_type, begndate=_near(rng, end), enddate=end, setl_time=setl,
        **_money(rng, -1 if reversal else 1),
        dscg_maindiag_code=rng.choice([None, "", "I10", "J18.9", "I10.x00x002", "E14.900x001", "i10",
                                       "I10\n", "I1", "I10.", "I10.x00x0021", "I10.x00X002"]),
        dise_codg=rng.choice([None, "M03900"]),
        pay_method=rng.choice(["DRG", "DIP", "ITEM", "FEE"]), setl_type=rng.choice(["1", "2", "3", "4"]),
        assist_grp=rng.choice(["NONE", "TEKUN", "POOR"]),
        refd_setl_flag="1" if reversal else rng.choice(["0"] * 20 + ["2"]),
        init_setl_id="s0" if reversal else None,
    )


def random_filing(rng: random.Random) -> dict:
    submitted = _instant(rng)
    status = rng.choice(["SUBMITTED", "ACCEPTED", "COMPLETED", "REJECTED", "DONE"])
    closed = status in ("COMPLETED", "REJECTED")
    completed = submitted + dt.timedelta(seconds=rng.choice([-1, 0, 1, 86400 * 3]))
    if rng.random() < 0.1:
        closed = not closed
    return BASE["filing"](
        event_id=f"e{rng.randrange(10**9)}", case_id=f"c{rng.randrange(10**9)}",
        matter_code=rng.choice(MATTERS), insu_admdvs=rng.choice(LOCAL + FOREIGN + BAD_REGIONS),
        channel=rng.choice(["ONLINE", "WINDOW", "FAX"]), status=status, submitted_time=submitted,
        completed_time=completed if closed else None, rating=rng.choice([None, 0, 1, 3, 5, 6]),
    )


def random_contribution(rng: random.Random) -> dict:
    months = ["202401", "202403", "202412", "202413", "202400", "2024-1", "20240"]
    return BASE["contribution"](
        psn_no=rng.choice(["p1", "p2", ""]), insutype=rng.choice(["310", "390", "999"]),
        clct_type=rng.choice(["10", "31", "20"]), accrym_begn=rng.choice(months),
        accrym_end=rng.choice(months))


def random_settlement_list(rng: random.Random) -> dict:
    return BASE["settlement_list"](
        setl_id=rng.choice(["s1", "s2", ""]),
        fixmedins_code=rng.choice(INSTITUTIONS + ["H640104", "X64010400001", "H64010400001\n"]))


def random_rows(stream: str, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    pool: list[str] = []
    make = {"enrolment": lambda: random_enrolment(rng, pool), "settlement": lambda: random_settlement(rng),
            "filing": lambda: random_filing(rng), "contribution": lambda: random_contribution(rng),
            "settlement_list": lambda: random_settlement_list(rng)}[stream]
    rows = [make() for _ in range(n)]
    for row in rows:  # a few nulls anywhere, the contract notwithstanding
        for key in row:
            if key != "event_id" and rng.random() < NULL_RATE:
                row[key] = None
    return rows


def dataset(stream: str) -> list[dict]:
    edge = [row for _, s, rows, _ in CASES if s == stream for row in rows]
    return edge + random_rows(stream, N_RANDOM, seed=STREAMS.index(stream))


@pytest.mark.parametrize("stream", STREAMS)
def test_compiled_sql_flags_exactly_the_rows_great_expectations_flags(stream):
    table = arrow_table(stream, dataset(stream))
    compiled = sql_failures(stream, table)
    ge = expectations.ge_failures(stream, table, REF)
    assert ge.keys() == compiled.keys()
    for rule in compiled:
        only_sql, only_ge = compiled[rule] - ge[rule], ge[rule] - compiled[rule]
        assert not only_sql and not only_ge, (
            f"{rule}: flagged only by SQL at {sorted(only_sql)[:10]}, only by GE at {sorted(only_ge)[:10]}")
        # the data set exercises every rule both ways
        assert 0 < len(compiled[rule]) < table.num_rows, f"{rule} flags {len(compiled[rule])} rows"


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside DuckDB's .df()
def test_ge_failures_accepts_a_frame_from_duckdb_df():
    """DuckDB's .df() gives float money and datetime64 dates: ge_frame casts them
    back to the contract types, so the verdicts do not change."""
    import duckdb

    table = arrow_table("settlement", random_rows("settlement", 300, seed=7))
    con = duckdb.connect()
    con.register("settlement", table)
    frame = con.sql("SELECT * FROM settlement").df()
    assert frame["medfee_sumamt"].dtype == "float64"
    assert expectations.ge_failures("settlement", frame, REF) == expectations.ge_failures("settlement", table, REF)


def test_a_rule_great_expectations_could_not_run_raises():
    table = arrow_table("settlement", [BASE["settlement"]()]).drop_columns(["fixmedins_code"])
    with pytest.raises(RuntimeError, match="T01"):
        expectations.ge_failures("settlement", table, REF)
