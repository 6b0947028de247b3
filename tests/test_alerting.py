"""Alerting: checks on hand-made warehouse rows, delivery to local servers
(HTTP and SMTP on 127.0.0.1 only), debounce, recovery and failed channels."""
from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

import alerting.channels
from alerting import evaluate
from alerting.anomaly import robust_z
from alerting.channels import dingtalk_sign, dingtalk_url
from alerting.cli import alerts_main
from transforms.indicators.catalog import INDICATORS
from warehouse.duckdb_store import DuckDBWarehouse, connect
from warehouse.tables import arrow_schema

T0 = dt.datetime(2023, 6, 1, 2, 0, tzinfo=dt.UTC)
MAY = (dt.date(2023, 5, 1), dt.date(2023, 5, 31))
FAST = {"attempts": 3, "backoff_seconds": 0.01, "backoff_max_seconds": 0.02, "timeout_seconds": 2}
ONLY = ("pass_rate", "target_miss", "anomaly", "silence", "dead_letters")


def only(kind: str, **spec) -> dict:
    """An alerts section with one check enabled (plus ``spec`` for it)."""
    section = {k: {"enabled": k == kind} for k in ONLY}
    section[kind].update(spec)
    section["delivery"] = FAST
    return section


# --- local servers -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # urllib honours proxy variables; local test traffic must go straight to 127.0.0.1.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        url = urllib.parse.urlsplit(self.path)
        self.server.received.append({"path": url.path, "raw_query": url.query,
                                     "query": urllib.parse.parse_qs(url.query),
                                     "content_type": self.headers["Content-Type"],
                                     "json": json.loads(body.decode("utf-8"))})
        if url.path == "/broken":
            self.send_response(500)
            self.end_headers()
            return
        reply = b'{"errcode":0,"errmsg":"ok"}' if url.path in ("/dingtalk", "/wecom") else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]):
    """A real HTTP server with ``handler`` on 127.0.0.1: (server, url); the
    handler appends what it receives to ``server.received``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server():
    with serving(Receiver) as served:
        yield served


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    class Handler:
        messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            self.messages.append(envelope)
            return "250 OK"

    handler = Handler()
    handler.messages = []
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- hand-made warehouse -----------------------------------------------------------------


@pytest.fixture
def wh_path(tmp_path):
    return make_warehouse(str(tmp_path / "wh.duckdb"))


def make_warehouse(path: str) -> str:
    """A DuckDB warehouse with the schema and four regions of 宁夏."""
    with DuckDBWarehouse(path) as wh:
        wh.ensure_schema([i.code for i in INDICATORS])
        regions = [("640000", "宁夏回族自治区", "province", None, None),
                   ("640100", "银川市", "pooling", "640000", "640100"),
                   ("640104", "兴庆区", "county", "640100", "640100"),
                   ("640105", "西夏区", "county", "640100", "640100")]
        cols = ["region_code", "name", "level", "parent_code", "pooling_code"]
        wh.begin_run("dims", "nightly", "test", T0 - dt.timedelta(days=30), None)
        dims = [dict(zip(cols, r)) for r in regions]
        wh.publish("dims", {"dim_region": _table("dim_region", dims)})
        wh.finish_run("dims", "failed")  # keep it out of "latest succeeded run"
    return path


def _table(name: str, rows: list[dict]) -> pa.Table:
    schema = arrow_schema(name)
    return pa.Table.from_pylist(rows, schema=pa.schema([f for f in schema if f.name in rows[0]]))


def add_run(path, run_id, at, **tables) -> str:
    with DuckDBWarehouse(path) as wh:
        wh.begin_run(run_id, "nightly", "test", at, at)
        wh.publish(run_id, {name: _table(name, rows) for name, rows in tables.items() if rows})
        wh.finish_run(run_id, "succeeded", at)
    return run_id


def rule_row(region="640104", level="county", rule="T04", checked=200, failed=10,
             period=MAY, period_type="MONTH"):
    return {"rule_id": rule, "stream": "settlement", "region_code": region, "region_level": level,
            "period_type": period_type, "period_start": period[0], "period_end": period[1],
            "checked": checked, "failed": failed, "pass_rate": 1 - failed / checked,
            "pipeline": "nightly"}


def indicator_row(code="I08", region="640104", level="county", month=5, value=0.9, target=0.99,
                  denominator=100, as_of=T0):
    start = dt.date(2023, month, 1)
    end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    from decimal import Decimal
    return {"indicator_code": code, "region_code": region, "region_level": level,
            "period_type": "MONTH", "period_start": start, "period_end": end,
            "numerator": Decimal(str(round(value * denominator, 6))),
            "denominator": Decimal(denominator), "value": value, "target": target,
            "direction": ">=", "meets_target": value >= target, "as_of": as_of,
            "pipeline": "nightly"}


def stream_row(stream="settlement", read=1000, dead=0):
    return {"stream": stream, "read": read, "accepted": read - dead, "duplicates": 0,
            "dead_lettered": dead, "late_dropped": 0, "quality_failures": 0}


def dq_rows(path):
    con = connect(path, read_only=True)
    try:
        cur = con.execute("SELECT * FROM dq_alerts ORDER BY raised_at, kind, subject, region_code")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


# --- DingTalk signature ------------------------------------------------------------------

SECRET, TIMESTAMP = "SECyibao-test-secret", 1700000000000
# Computed once, independently of the code under test:
#   printf '1700000000000\nSECyibao-test-secret' | openssl dgst -sha256 \
#       -hmac 'SECyibao-test-secret' -binary | base64
EXPECTED_SIGN = "kj22nLn+9tjIIb8R7sPSzTjjfISvNjTvJLXgsHlvj/Q="


def test_dingtalk_signature_matches_hand_computed_value():
    assert dingtalk_sign(SECRET, TIMESTAMP) == EXPECTED_SIGN
    url = dingtalk_url("https://robot.invalid/send?access_token=abc", SECRET, TIMESTAMP)
    # + / = must be URL-encoded, or DingTalk rejects the signature.
    assert url == ("https://robot.invalid/send?access_token=abc&timestamp=1700000000000"
                   "&sign=kj22nLn%2B9tjIIb8R7sPSzTjjfISvNjTvJLXgsHlvj%2FQ%3D")
    assert dingtalk_url("https://robot.invalid/send", None) == "https://robot.invalid/send"


# --- channels ----------------------------------------------------------------------------


def test_webhook_dingtalk_and_wecom_receive_the_alert(wh_path, http_server, monkeypatch):
    server, base = http_server
    monkeypatch.setattr(alerting.channels, "_now_ms", lambda: TIMESTAMP)
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate", threshold=0.95)
    section["channels"] = {
        "log": {"enabled": False},
        "hook": {"type": "webhook", "url": f"{base}/hook"},
        "ding": {"type": "dingtalk", "url": f"{base}/dingtalk?access_token=tok",
                 "secret_env": "TEST_DING_SECRET"},
        "wecom": {"type": "wecom", "url": f"{base}/wecom?key=k"},
    }
    monkeypatch.setenv("TEST_DING_SECRET", SECRET)

    alerts = evaluate(wh_path, run, section, T0)

    assert len(alerts) == 1
    alert = alerts[0]
    assert [(c["channel"], c["ok"], c["attempts"]) for c in alert.channels] == [
        ("hook", True, 1), ("ding", True, 1), ("wecom", True, 1)]
    by_path = {r["path"]: r for r in server.received}
    assert set(by_path) == {"/hook", "/dingtalk", "/wecom"}
    for r in server.received:
        assert r["content_type"] == "application/json; charset=utf-8"

    hook = by_path["/hook"]["json"]
    assert hook["alert_id"] == alert.alert_id
    assert hook["state"] == "firing"
    assert hook["kind"] == "pass_rate"
    assert hook["subject"] == "T04"
    assert hook["region_code"] == "640104"
    assert hook["region_name"] == "兴庆区"
    assert hook["region_level"] == "county"
    assert hook["period"] == "2023-05"
    assert hook["observed"] == pytest.approx(0.8)
    assert hook["threshold"] == pytest.approx(0.95)
    assert hook["unit"] == "ratio"
    assert hook["run_id"] == "r1"
    assert hook["raised_at"] == T0.isoformat()
    # Issue 15: every alert says what its rule means (Chinese name and one-line description).
    assert hook["message_zh"] == ("兴庆区（640104，区县）2023-05 质量规则 T04 结算金额平衡（结算）通过率为"
                                  " 80.00%，低于阈值 95.00%（检查 200 条，不合格 40 条）。"
                                  "规则说明：基金支付 + 个人账户支付 + 账户共济支付 + 个人现金支付"
                                  " + 医院负担 = 医疗费总额（允差 0.01 元）。")
    assert hook["message_en"] == ("兴庆区 (640104, county) 2023-05: pass rate of quality rule T04"
                                  " (settlement) is 80.00%, below the threshold 95.00%"
                                  " (40 of 200 records failed). Rule T04: fund_pay_sumamt + acct_pay"
                                  " + acct_mulaid_pay + psn_cash_pay + hosp_part_amt = medfee_sumamt"
                                  " (± 0.01).")
    assert hook["title_zh"] == "【医保数据质量告警】质量规则通过率偏低｜兴庆区 2023-05"
    assert "FROM quality_failures" in hook["sql"]
    assert "rule_id = 'T04' AND region_code = '640104'" in hook["sql"]
    assert "DATE '2023-05-01' AND DATE '2023-05-31'" in hook["sql"]

    ding = by_path["/dingtalk"]
    assert ding["query"]["access_token"] == ["tok"]
    assert ding["query"]["timestamp"] == [str(TIMESTAMP)]
    assert ding["query"]["sign"] == [EXPECTED_SIGN]
    assert "sign=kj22nLn%2B9tjIIb8R7sPSzTjjfISvNjTvJLXgsHlvj%2FQ%3D" in ding["raw_query"]
    assert ding["json"]["msgtype"] == "markdown"
    assert ding["json"]["markdown"]["title"] == alert.title_zh
    text = ding["json"]["markdown"]["text"]
    assert text.startswith(f"### {alert.title_zh}\n")
    assert alert.text_zh in text and alert.text_en in text
    assert "> FROM quality_failures" in text

    wecom = by_path["/wecom"]
    assert wecom["query"]["key"] == ["k"]
    assert wecom["json"]["msgtype"] == "markdown"
    assert set(wecom["json"]["markdown"]) == {"content"}
    assert wecom["json"]["markdown"]["content"] == text

    (row,) = dq_rows(wh_path)
    assert row["alert_id"] == alert.alert_id
    assert (row["kind"], row["subject"], row["region_code"], row["period"]) == (
        "pass_rate", "T04", "640104", "2023-05")
    assert row["observed"] == pytest.approx(0.8) and row["threshold"] == pytest.approx(0.95)
    assert row["suppressed"] is False
    assert "兴庆区" in row["message"] and "FROM quality_failures" in row["message"]
    ok = [c["channel"] for c in json.loads(row["channels"]) if c["ok"]]
    assert ok == ["hook", "ding", "wecom"]


def test_email_over_smtp_is_utf8_multipart(wh_path, smtp_server):
    handler, port = smtp_server
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate")
    section["channels"] = {"mail": {"type": "email", "host": "127.0.0.1", "port": port,
                                    "from": "yibao@example.invalid",
                                    "to": ["dq@example.invalid", "ops@example.invalid"]}}

    (alert,) = evaluate(wh_path, run, section, T0)

    assert [(c["channel"], c["ok"]) for c in alert.channels] == [("log", True), ("mail", True)]
    (envelope,) = handler.messages
    assert envelope.mail_from == "yibao@example.invalid"
    assert envelope.rcpt_tos == ["dq@example.invalid", "ops@example.invalid"]
    msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert msg["Subject"] == "【医保数据质量告警】质量规则通过率偏低｜兴庆区 2023-05"
    assert envelope.original_content.isascii()  # headers encoded, bodies base64: 7-bit safe
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert alert.text_zh in plain.get_content() and alert.text_en in plain.get_content()
    assert "FROM quality_failures" in plain.get_content()
    assert "兴庆区" in html.get_content() and "<pre>" in html.get_content()


# --- debounce, recovery, failures ------------------------------------------------------------


def test_debounce_holds_over_repeated_evaluations(wh_path):
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = {**only("pass_rate"), "quiet_hours": 24}
    first = evaluate(wh_path, run, section, T0)
    assert [(a.suppressed, a.delivered) for a in first] == [(False, True)]
    for hours in (1, 6, 23):
        again = evaluate(wh_path, run, section, T0 + dt.timedelta(hours=hours))
        assert [(a.suppressed, a.channels) for a in again] == [(True, [])]
    reminder = evaluate(wh_path, run, section, T0 + dt.timedelta(hours=24))
    assert [(a.suppressed, a.delivered) for a in reminder] == [(False, True)]
    rows = dq_rows(wh_path)
    assert [r["suppressed"] for r in rows] == [False, True, True, True, False]
    assert {r["kind"] for r in rows} == {"pass_rate"}


def test_recovery_is_sent_once(wh_path, http_server):
    server, base = http_server
    section = only("pass_rate")
    section["channels"] = {"log": {"enabled": False},
                           "hook": {"type": "webhook", "url": f"{base}/hook"}}
    evaluate(wh_path, add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)]),
             section, T0)
    # The next night the same county-month is fine again (the row is replaced by key).
    t1 = T0 + dt.timedelta(days=1)
    run2 = add_run(wh_path, "r2", t1, quality_rule_results=[rule_row(failed=1)])
    resolved = evaluate(wh_path, run2, section, t1)
    assert [(a.state, a.suppressed, a.delivered) for a in resolved] == [("resolved", False, True)]
    assert resolved[0].text_zh.startswith("已恢复：兴庆区（640104，区县）2023-05 质量规则 T04")
    assert evaluate(wh_path, run2, section, t1 + dt.timedelta(hours=1)) == []
    assert evaluate(wh_path, run2, section, t1 + dt.timedelta(days=10)) == []
    assert [r["json"]["state"] for r in server.received] == ["firing", "resolved"]
    assert [r["kind"] for r in dq_rows(wh_path)] == ["pass_rate", "pass_rate.resolved"]
    # And when it breaks again, that is a new alert at once, quiet period or not.
    run3 = add_run(wh_path, "r3", t1 + dt.timedelta(hours=2),
                   quality_rule_results=[rule_row(failed=50)])
    again = evaluate(wh_path, run3, section, t1 + dt.timedelta(hours=2))
    assert [(a.state, a.suppressed) for a in again] == [("firing", False)]


def test_channel_down_is_retried_recorded_and_never_raises(wh_path, http_server):
    _, base = http_server
    closed = _free_port()  # bound then released: nothing listens there
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate", quiet_hours=24)
    section["delivery"] = {"attempts": 3, "backoff_seconds": 0.01, "backoff_max_seconds": 0.02,
                           "timeout_seconds": 1}
    section["channels"] = {"down": {"type": "webhook", "url": f"http://127.0.0.1:{closed}/x"},
                           "http500": {"type": "webhook", "url": f"{base}/broken"},
                           "hook": {"type": "webhook", "url": f"{base}/hook"}}

    (alert,) = evaluate(wh_path, run, section, T0)  # returns normally

    results = {c["channel"]: c for c in alert.channels}
    assert (results["down"]["ok"], results["down"]["attempts"]) == (False, 3)
    assert "URLError" in results["down"]["error"]
    assert (results["http500"]["ok"], results["http500"]["attempts"]) == (False, 3)
    assert "500" in results["http500"]["error"]
    assert results["hook"]["ok"] and results["log"]["ok"]
    (row,) = dq_rows(wh_path)
    recorded = {c["channel"]: c["ok"] for c in json.loads(row["channels"])}
    assert recorded == {"log": True, "down": False, "http500": False, "hook": True}

    # Within the quiet period only the failed channels are tried again: not lost, not spammed.
    (retry,) = evaluate(wh_path, run, section, T0 + dt.timedelta(hours=1))
    assert not retry.suppressed
    assert [c["channel"] for c in retry.channels] == ["down", "http500"]


def test_unknown_channel_setting_is_recorded_not_raised(wh_path):
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate")
    section["channels"] = {"ding": {"type": "dingtalk", "url_env": "UNSET_VARIABLE_FOR_TEST"}}
    (alert,) = evaluate(wh_path, run, section, T0)
    ding = next(c for c in alert.channels if c["channel"] == "ding")
    assert not ding["ok"] and "url" in ding["error"]


# --- the checks --------------------------------------------------------------------------


def test_pass_rate_scopes_thresholds_and_min_checked(wh_path):
    rows = [
        rule_row("640104", failed=40),  # 0.80: fires
        rule_row("640105", failed=40, rule="T05"),  # 0.80 but T05 has its own threshold 0.75
        rule_row("640105", checked=10, failed=5),  # 0.50 but too few checked
        rule_row("640100", "pooling", checked=400, failed=40),  # 0.90: fires
        rule_row("640000", "province", checked=2000, failed=60),  # 0.97: fine
        rule_row("640104", failed=100, period_type="YTD",
                 period=(dt.date(2023, 1, 1), MAY[1])),  # YTD not in scope
    ]
    run = add_run(wh_path, "r1", T0, quality_rule_results=rows)
    alerts = evaluate(wh_path, run, only("pass_rate", by_rule={"T05": 0.75}), T0)
    got = sorted((a.subject, a.region_code) for a in alerts)
    assert got == [("T04", "640100"), ("T04", "640104")]
    pooling = next(a for a in alerts if a.region_code == "640100")
    assert "pooling_code = '640100'" in pooling.sql
    # Scoped to counties, and by_region wins over the default.
    alerts = evaluate(wh_path, run, only("pass_rate", levels=["county"], by_rule={"T05": 0.75},
                                         by_region={"640104": 0.5}), T0 + dt.timedelta(days=9))
    assert [(a.subject, a.region_code, a.state) for a in alerts] == [("T04", "640104", "resolved")]


def test_target_miss(wh_path):
    rows = [indicator_row("I08", "640100", "pooling", value=0.95),
            indicator_row("I08", "640000", "province", value=0.995),
            indicator_row("I08", "640100", "pooling", month=3, value=0.5),  # an earlier month
            indicator_row("I08", "640104", "county", value=0.5)]  # counties not in default scope
    run = add_run(wh_path, "r1", T0, indicator_values=rows)
    # Older months of the run fire only within recent_months, but any month may resolve.
    (alert,) = evaluate(wh_path, run, only("target_miss", recent_months=1), T0)
    assert (alert.kind, alert.subject, alert.region_code, alert.period) == (
        "target_miss", "I08", "640100", "2023-05")
    assert alert.text_zh == ("银川市（640100，统筹区）2023-05 I08 结算信息合格率为 95.00%，"
                             "低于目标 99.00%。指标口径：records passing every settlement rule"
                             " / records (latest-version settlement records (normal or reversal)"
                             " with setl_time in period)。")
    # I08 has an institution breakdown: the drill-down lists the members behind the miss.
    assert "FROM v_indicator_shortfall" in alert.sql and "member_code" in alert.sql
    # By default (issue 15) every month the run published is evaluated.
    fired = evaluate(wh_path, run, only("target_miss"), T0 + dt.timedelta(hours=1))
    assert sorted((a.period, a.suppressed) for a in fired) == [("2023-03", False), ("2023-05", True)]
    t1 = T0 + dt.timedelta(days=1)
    run2 = add_run(wh_path, "r2", t1, indicator_values=[
        indicator_row("I08", "640100", "pooling", month=3, value=0.995, as_of=t1),
        indicator_row("I08", "640100", "pooling", month=5, value=0.95, as_of=t1)])
    later = evaluate(wh_path, run2, only("target_miss"), t1)
    assert sorted((a.period, a.state, a.suppressed) for a in later) == [
        ("2023-03", "resolved", False), ("2023-05", "firing", True)]


def test_anomaly_against_the_regions_own_history(wh_path):
    history = [0.97, 0.975, 0.98, 0.97, 0.985, 0.975, 0.98, 0.97]  # Sep 2022 .. Apr 2023
    months = [(2022, m) for m in range(9, 13)] + [(2023, m) for m in range(1, 5)]
    rows = []
    for (year, month), v in zip(months, history, strict=True):
        for region, level in (("640104", "county"), ("640105", "county")):
            r = indicator_row("I08", region, level, value=v, target=0.5)
            start = dt.date(year, month, 1)
            r["period_start"] = start
            r["period_end"] = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            rows.append(r)
    add_run(wh_path, "old", T0 - dt.timedelta(days=20), indicator_values=rows)
    run = add_run(wh_path, "r1", T0, indicator_values=[
        indicator_row("I08", "640104", value=0.90, target=0.5),  # a drop: anomaly
        indicator_row("I08", "640105", value=0.99, target=0.5),  # a rise of a >= indicator: fine
    ])
    (alert,) = evaluate(wh_path, run, only("anomaly"), T0)
    assert (alert.subject, alert.region_code, alert.period) == ("I08", "640104", "2023-05")
    z, median, spread = robust_z(0.90, history, 0.01)
    assert alert.observation.context["median"] == pytest.approx(median) == pytest.approx(0.975)
    assert alert.threshold == pytest.approx(median - 3.5 * spread)
    assert "前 8 个月中位数 97.50%" in alert.text_zh
    # Two-sided: the rise is flagged too.
    both = evaluate(wh_path, run, only("anomaly", two_sided=True, z_threshold=1.5),
                    T0 + dt.timedelta(days=1))
    assert {(a.region_code, a.suppressed) for a in both} == {("640104", True), ("640105", False)}


def test_robust_z_handles_a_flat_history():
    assert robust_z(1.0, [1.0] * 6, 0.01) == (0.0, 1.0, 0.01)
    z, _, _ = robust_z(0.95, [1.0] * 6, 0.01)
    assert z == pytest.approx(-5.0)
    assert robust_z(0.5, [1.0, 1.0], 0.0)[0] == float("-inf")


def test_silence_from_run_history_and_from_event_times(wh_path):
    day = dt.timedelta(days=1)
    add_run(wh_path, "n1", T0, pipeline_run_streams=[stream_row("settlement", 100),
                                                     stream_row("filing", 10)])
    add_run(wh_path, "n2", T0 + day, pipeline_run_streams=[stream_row("settlement", 150),
                                                           stream_row("filing", 10)])
    run = add_run(wh_path, "n3", T0 + 3 * day, pipeline_run_streams=[
        stream_row("settlement", 150), stream_row("filing", 10)])
    spec = {"hours": 36, "by_stream": {"filing": 96}}
    # Measured at n3's as_of (T0 + 3 days), whenever the evaluation runs (issue 15).
    alerts = evaluate(wh_path, run, only("silence", **spec), T0 + 30 * day)
    # settlement last grew in n2 (48 h before); filing only in n1 (72 h < 96 h).
    assert [(a.subject, round(a.observed), a.threshold) for a in alerts] == [("settlement", 48, 36)]
    assert alerts[0].text_en.startswith("time since the last record of stream settlement is 48.0 h")
    assert "最后记录 2023-06-02 02:00 UTC" in alerts[0].text_zh
    # A streaming caller knows the max event time: it wins, and clears the alert.
    later = T0 + 3 * day + dt.timedelta(hours=1)
    alerts = evaluate(wh_path, run, only("silence", **spec), later,
                      last_event_times={"settlement": later - dt.timedelta(minutes=5)})
    assert [(a.subject, a.state) for a in alerts] == [("settlement", "resolved")]


def test_dead_letters_by_count_and_share(wh_path):
    run = add_run(wh_path, "r1", T0, pipeline_run_streams=[
        stream_row("settlement", 10_000, dead=150),  # count above 100
        stream_row("filing", 100, dead=5),  # 5% above 1%
        stream_row("enrolment", 10_000, dead=50)])  # fine on both
    alerts = evaluate(wh_path, run, only("dead_letters"), T0)
    got = {a.subject: (a.observed, a.threshold, a.observation.unit) for a in alerts}
    assert got == {"settlement": (150, 100, "count"), "filing": (0.05, 0.01, "ratio")}
    assert "FROM dead_letters" in alerts[0].sql and "run_id = 'r1'" in alerts[0].sql


def test_default_run_is_the_latest_succeeded_one(wh_path):
    add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    add_run(wh_path, "r2", T0 + dt.timedelta(hours=1),
            quality_rule_results=[rule_row("640105", failed=40)])
    (alert,) = evaluate(wh_path, None, only("pass_rate"), T0 + dt.timedelta(hours=2))
    assert alert.region_code == "640105" and alert.run_id == "r2"


def test_naive_now_is_refused(wh_path):
    add_run(wh_path, "r1", T0, quality_rule_results=[rule_row()])
    with pytest.raises(ValueError):
        evaluate(wh_path, "r1", only("pass_rate"), dt.datetime(2023, 6, 1))


def test_unknown_channel_type_is_a_config_error(wh_path):
    with pytest.raises(ValueError, match="type must be one of"):
        evaluate(wh_path, None, {"channels": {"x": {"type": "pager"}}}, T0)


# --- command line ------------------------------------------------------------------------


def test_cli_test_sends_a_sample(http_server, capsys):
    server, base = http_server
    assert alerts_main(["test", "--channel", "webhook", "--url", f"{base}/hook"]) == 0
    (received,) = server.received
    assert received["json"]["region_name"] == "兴庆区"
    assert received["json"]["title_zh"].startswith("【测试】")
    assert '"ok": true' in capsys.readouterr().out


def test_cli_test_dingtalk_and_failure_exit_code(http_server, tmp_path):
    server, base = http_server
    assert alerts_main(["test", "--channel", "dingtalk", "--url", f"{base}/dingtalk?access_token=t",
                        "--secret", SECRET]) == 0
    assert server.received[0]["query"]["sign"]
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("alerts:\n  delivery: {attempts: 2, backoff_seconds: 0.01}\n", encoding="utf-8")
    assert alerts_main(["test", "--channel", "webhook", "--url", f"{base}/broken",
                        "--config", str(cfg)]) == 1


def test_cli_test_email(smtp_server):
    handler, port = smtp_server
    assert alerts_main(["test", "--channel", "email", "--smtp", f"127.0.0.1:{port}",
                        "--to", "dq@example.invalid"]) == 0
    assert handler.messages[0].rcpt_tos == ["dq@example.invalid"]


def test_cli_evaluate(wh_path, tmp_path, capsys):
    add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text("alerts:\n" + "".join(f"  {k}: {{enabled: {str(k == 'pass_rate').lower()}}}\n"
                                         for k in ONLY), encoding="utf-8")
    assert alerts_main(["evaluate", "--warehouse", f"duckdb:///{wh_path}", "--run-id", "r1",
                        "--config", str(cfg), "--now", "2023-06-01T10:00:00+08:00"]) == 0
    out = capsys.readouterr().out
    assert "firing   sent" in out and "兴庆区" in out and "1 alert rows" in out
