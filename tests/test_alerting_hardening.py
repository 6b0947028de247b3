"""Alerting hardening (issues 14 and 15): no credential in any log line,
exception text or dq_alerts row; silence measured at the run's as_of; one
summary log line; every alert says what its rule means; every month the
run published evaluated; provisional rows never fire; the top-contributors
hook.  Real DuckDB files, real HTTP and SMTP servers on 127.0.0.1."""
from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.parse
from http.server import BaseHTTPRequestHandler

import pytest

from alerting import evaluate
from alerting.channels import dingtalk_sign
from alerting.cli import alerts_main
from alerting.messages import rule_meanings, stream_names, texts
from alerting.model import FIRING, Observation
from alerting.redact import describe, redact, secrets_of
from tests.test_alerting import (  # noqa: F401 - no_proxy: an autouse fixture
    FAST,
    T0,
    _free_port,
    add_run,
    dq_rows,
    indicator_row,
    make_warehouse,
    no_proxy,
    only,
    rule_row,
    serving,
    stream_row,
)
from warehouse.duckdb_store import connect

TOKEN = "tok-SECRET-8f3a9c71"
DING_SECRET = "SEC-hostile-秘密-9d1e"
PASSWORD = "p@ss-W0rd-7731"
SECRETS = (TOKEN, DING_SECRET, PASSWORD)


class Robot(BaseHTTPRequestHandler):
    """/ok answers like a robot; /broken 500; /echo refuses, quoting the
    request's URL back (as real APIs do in their error messages)."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        url = urllib.parse.urlsplit(self.path)
        self.server.received.append({"path": url.path, "query": urllib.parse.parse_qs(url.query),
                                     "auth": self.headers["Authorization"]})
        if url.path == "/broken":
            self.send_response(500)
            self.end_headers()
            return
        reply = {"errcode": 0, "errmsg": "ok"}
        if url.path == "/echo":
            reply = {"errcode": 310000, "errmsg": f"sign not match for {self.path}"}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def wh_path(tmp_path):
    return make_warehouse(str(tmp_path / "wh.duckdb"))


@pytest.fixture
def robot():
    with serving(Robot) as served:
        yield served


@pytest.fixture
def smtp_rejecting_login():
    """A real SMTP server whose AUTH refuses every password."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port(),
                            authenticator=lambda *a: AuthResult(success=False, handled=False),
                            auth_require_tls=False)
    controller.start()
    yield controller.port
    controller.stop()


def _leaks(text: str) -> list[str]:
    found = [s for s in SECRETS if s in text]
    found += [s for s in ("sign=", "access_token=", "key=", "timestamp=")
              if s in text and f"{s}***" not in text]
    for s in SECRETS:
        for form in (urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s),
                     s.encode("unicode_escape").decode()):
            if form in text:
                found.append(form)
    return found


def _all_text(path: str, caplog, alerts) -> str:
    rows = dq_rows(path)
    return "\n".join([caplog.text, *(r.getMessage() for r in caplog.records),
                      json.dumps([{k: str(v) for k, v in r.items()} for r in rows],
                                 ensure_ascii=False),
                      json.dumps([a.channels for a in alerts], ensure_ascii=False)])


def test_secrets_leak_invalidurl_access_token_never_in_logs_exceptions_or_dq_alerts(
        wh_path, robot, smtp_rejecting_login, caplog, monkeypatch):
    """Issue 14: "A DingTalk webhook URL with a trailing newline produced
    `InvalidURL … access_token=SECRET…&sign=…` in an ERROR log line and in
    `dq_alerts.channels`." — hostile URLs against real servers: each fails
    for its own reason, and no token, secret, password or signature
    appears anywhere."""
    server, base = robot
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HOSTILE_DING_SECRET", DING_SECRET)
    monkeypatch.setenv("HOSTILE_SMTP_PASSWORD", PASSWORD)
    channels = {
        # A newline inside the URL (not only at its end): http.client quotes path and query.
        "ding_newline": {"type": "dingtalk", "url": f"{base}/ok?access_token={TOKEN}\n&x=1",
                         "secret_env": "HOSTILE_DING_SECRET"},
        "ding_space": {"type": "dingtalk", "url": f"{base}/robot send?access_token={TOKEN}",
                       "secret_env": "HOSTILE_DING_SECRET"},
        "ding_refused": {"type": "dingtalk", "url": f"{base}/echo?access_token={TOKEN}",
                         "secret_env": "HOSTILE_DING_SECRET"},
        "wecom_non_ascii": {"type": "wecom", "url": f"{base}/企业微信?key={TOKEN}"},
        "wecom_bad_port": {"type": "wecom", "url": f"http://127.0.0.1:{TOKEN}/send?key={TOKEN}"},
        "hook_500": {"type": "webhook", "url": f"{base}/broken?access_token={TOKEN}"},
        "hook_userinfo_bad_port": {"type": "webhook",
                                   "url": f"http://yibao:{PASSWORD}@127.0.0.1:x{PASSWORD}/hook"},
        "hook_unresolvable": {"type": "webhook",
                              "url": f"https://yibao:{PASSWORD}@robot.invalid/{TOKEN}?key={TOKEN}"},
        "hook_bad_ipv6": {"type": "webhook", "url": f"http://[::1/{TOKEN}?token={TOKEN}"},
        "mail": {"type": "email", "host": "127.0.0.1", "port": smtp_rejecting_login,
                 "username": "yibao", "password_env": "HOSTILE_SMTP_PASSWORD",
                 "to": ["dq@example.invalid"]},
    }
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate")
    section["delivery"] = {**FAST, "attempts": 2}
    section["channels"] = {"log": {"type": "log"}, **channels}

    (alert,) = evaluate(wh_path, run, section, T0)

    results = {c["channel"]: c for c in alert.channels}
    assert {name for name, c in results.items() if c["ok"]} == {"log"}
    # Each failure still says what went wrong, and where (scheme and host only).
    assert "InvalidURL" in results["ding_newline"]["error"]
    assert "control characters" in results["ding_space"]["error"]
    assert "refused" in results["ding_refused"]["error"]
    assert "UnicodeEncodeError" in results["wecom_non_ascii"]["error"]
    assert "port" in results["wecom_bad_port"]["error"]
    assert "HTTP Error 500" in results["hook_500"]["error"]
    assert "URLError" in results["hook_unresolvable"]["error"]
    assert "IPv6" in results["hook_bad_ipv6"]["error"]
    assert "SMTPAuthenticationError" in results["mail"]["error"]
    assert results["hook_500"]["target"] == base
    assert results["hook_unresolvable"]["target"] == "https://robot.invalid"
    assert results["mail"]["target"] == "smtp://127.0.0.1 to dq@example.invalid"
    # The refusal really quoted the signed URL back, and the robot really got the token.
    assert any(r["path"] == "/echo" and r["query"]["sign"] for r in server.received)

    text = _all_text(wh_path, caplog, [alert])
    assert _leaks(text) == []
    # The one summary line names the failed channels.
    (summary,) = [r for r in caplog.records if r.getMessage().startswith("alerts for run")]
    assert summary.levelno == logging.ERROR
    assert "NOT delivered to ding_newline (1 alerts; InvalidURL" in summary.getMessage()


def test_trailing_newline_in_dingtalk_url_and_secret_is_stripped_and_delivered(
        wh_path, robot, caplog, monkeypatch):
    """Issue 14: "A DingTalk webhook URL with a trailing newline" — the
    operator's `echo` into the secret store; the alert still arrives,
    correctly signed, and nothing logs the token."""
    server, base = robot
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("NL_DING_URL", f"{base}/ok?access_token={TOKEN}\n")
    monkeypatch.setenv("NL_DING_SECRET", DING_SECRET + "\n")
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate")
    section["channels"] = {"ding": {"type": "dingtalk", "url_env": "NL_DING_URL",
                                    "secret_env": "NL_DING_SECRET"}}

    (alert,) = evaluate(wh_path, run, section, T0)

    assert [(c["channel"], c["ok"]) for c in alert.channels] == [("log", True), ("ding", True)]
    (got,) = server.received
    assert got["query"]["access_token"] == [TOKEN]
    ts = int(got["query"]["timestamp"][0])
    assert got["query"]["sign"] == [dingtalk_sign(DING_SECRET, ts)]
    assert _leaks(_all_text(wh_path, caplog, [alert])) == []


def test_webhook_userinfo_becomes_basic_auth(wh_path, robot, caplog):
    server, base = robot
    url = base.replace("http://", f"http://yibao:{urllib.parse.quote(PASSWORD)}@") + "/ok"
    run = add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    section = only("pass_rate")
    section["channels"] = {"hook": {"type": "webhook", "url": url}}
    (alert,) = evaluate(wh_path, run, section, T0)
    assert alert.channels[-1]["ok"] and alert.channels[-1]["target"] == base
    import base64
    (got,) = server.received
    assert base64.b64decode(got["auth"].split()[1]).decode() == f"yibao:{PASSWORD}"
    assert _leaks(_all_text(wh_path, caplog, [alert])) == []


def test_cli_test_output_is_redacted(robot, capsys, tmp_path):
    _, base = robot
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("alerts:\n  delivery: {attempts: 1}\n", encoding="utf-8")
    code = alerts_main(["test", "--channel", "dingtalk", "--url",
                        f"{base}/robot send?access_token={TOKEN}", "--secret", DING_SECRET,
                        "--config", str(cfg)])
    out = capsys.readouterr()
    assert code == 1
    assert "InvalidURL" in out.out
    assert _leaks(out.out + out.err) == []


def test_redact_hostile_values():
    spec = {"type": "dingtalk", "url": f"https://u:{PASSWORD}@oapi.dingtalk.com/robot/send"
                                       f"?access_token={TOKEN}\n", "secret": DING_SECRET}
    secrets = secrets_of([spec])
    # The exception text the issue quotes, byte for byte in shape.
    issue = (f"InvalidURL: URL can't contain control characters. '/robot/send?access_token="
             f"{TOKEN}\\n&timestamp=1700000000000&sign=kj22nLn%2B9tjIIb8R7sPSzTjjfISvNjTvJLXg"
             f"sHlvj%2FQ%3D' (found at least '\\n')")
    assert redact(issue, secrets) == ("InvalidURL: URL can't contain control characters. "
                                      "'/robot/send?access_token=***&timestamp=***&sign=***'"
                                      " (found at least '\\n')")
    for hostile in (spec["url"], repr(spec["url"]), urllib.parse.quote(spec["url"]),
                    f"nonnumeric port: '{PASSWORD}@oapi.dingtalk.com'", DING_SECRET,
                    repr(DING_SECRET), urllib.parse.quote_plus(DING_SECRET),
                    f"see https://hooks.example.invalid/services/T0/B0/{TOKEN} now"):
        assert _leaks(redact(hostile, secrets)) == [], hostile
    # Unknown secrets still lose their URL parts and credential parameters.
    assert redact("POST https://x:y@h.example/a/b?key=K&n=1 failed") == \
        "POST https://h.example/… failed"
    assert redact("reply: token=abc&sign=def") == "reply: token=***&sign=***"
    assert describe(spec) == "https://oapi.dingtalk.com"


def test_alerting_logger_redacts_whatever_is_logged(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("alerting").warning("posting to %s",
                                          f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}")
    assert TOKEN not in caplog.text and "https://oapi.dingtalk.com/…" in caplog.text


# --- issue 15 --------------------------------------------------------------------------------

STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")


def test_stream_silent_measured_from_as_of_not_wall_clock(wh_path, caplog):
    """Issue 15: "'Stream silent' is measured from the wall clock, so a run
    over 2023 data fires for all five streams. Measure from the run's as_of." """
    as_of = dt.datetime(2023, 4, 30, 15, 59, 59, tzinfo=dt.UTC)
    run = add_run(wh_path, "hist", as_of, pipeline_run_streams=[stream_row(s, 100) for s in STREAMS])
    alerts = evaluate(wh_path, run, only("silence"))  # now = the wall clock
    assert alerts == []
    # A stream that did stop before as_of still fires, by as_of's measure.
    later = as_of + dt.timedelta(days=3)
    run2 = add_run(wh_path, "hist2", later, pipeline_run_streams=[
        stream_row(s, 200 if s != "settlement" else 100) for s in STREAMS])
    (alert,) = evaluate(wh_path, run2, only("silence"))
    assert (alert.subject, alert.observed) == ("settlement", pytest.approx(72.0))
    assert "数据流 settlement（结算）" in alert.text_zh


def _months(region="640100", level="pooling", values=(0.95, 0.96, 0.999, 0.97)):
    return [indicator_row("I08", region, level, month=m, value=v)
            for m, v in zip((1, 2, 3, 4), values, strict=True)]


def test_nightly_warning_lines_replaced_by_one_summary_line(wh_path, caplog):
    """Issue 15: "Each nightly writes about 24 WARNING lines of 300 characters
    to stderr: alerts delivered go to the alert channels and one summary line
    to the log." """
    caplog.set_level(logging.INFO, logger="alerting")
    run = add_run(wh_path, "r1", T0, indicator_values=_months(),
                  quality_rule_results=[rule_row(failed=40)])
    section = {**only("target_miss"), "pass_rate": {"enabled": True}}
    alerts = evaluate(wh_path, run, section, T0)
    assert len(alerts) == 4
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "alerts for run r1: 4 raised (3 target_miss, 1 pass_rate); delivered to log"]
    # The alerts themselves: one INFO line each, the log channel's delivery.
    assert sum(r.levelno == logging.INFO and "【医保数据质量告警】" in r.getMessage()
               for r in caplog.records) == 4
    caplog.clear()
    again = evaluate(wh_path, run, section, T0 + dt.timedelta(hours=1))
    assert all(a.suppressed for a in again)
    (line,) = [r for r in caplog.records if r.getMessage().startswith("alerts for run")]
    assert (line.levelno, line.getMessage()) == (logging.INFO,
                                                 "alerts for run r1: 0 raised, 4 suppressed")


def test_alert_evaluation_covers_every_month_the_run_published(wh_path):
    """Issue 15: "Alert evaluation covers every month the run published, not only the last." """
    run = add_run(wh_path, "r1", T0, indicator_values=_months())
    alerts = evaluate(wh_path, run, only("target_miss"), T0)
    assert sorted(a.period for a in alerts) == ["2023-01", "2023-02", "2023-04"]


def test_no_target_miss_alert_on_provisional_rows(wh_path):
    """Issue 19 / WAREHOUSE.md: "Reports and alerts mark or skip provisional
    rows" — June's I13 showed 206/206 = 100 %; a provisional miss must not fire
    either.  Without the column every row counts as final (tested above)."""
    run = add_run(wh_path, "r1", T0, indicator_values=_months())
    con = connect(wh_path)
    try:
        con.execute("ALTER TABLE indicator_values ADD COLUMN IF NOT EXISTS provisional BOOLEAN")
        con.execute("UPDATE indicator_values SET provisional = (period_start >= DATE '2023-02-01')")
    finally:
        con.close()
    alerts = evaluate(wh_path, run, {**only("target_miss"), "anomaly": {"enabled": True,
                                                                         "min_history": 1}}, T0)
    assert [(a.kind, a.period) for a in alerts] == [("target_miss", "2023-01")]


def test_every_rule_has_a_chinese_name_and_description():
    """Issue 15: "Every alert says what its rule means (the rule's Chinese
    name and one-line description, not only `T04`)"."""
    meanings = rule_meanings()
    assert len(meanings) >= 27
    for rule_id, m in meanings.items():
        assert m.name_zh and m.name_zh != rule_id and not m.name_zh.isascii(), rule_id
        assert m.description_zh and "\n" not in m.description_zh, rule_id
        o = Observation("pass_rate", rule_id, "640104", "county", "2023-05", 0.5, 0.95, True,
                        True, "ratio", {"stream": "settlement", "checked": 10, "failed": 5})
        _, _, text_zh, text_en = texts(o, FIRING, "兴庆区")
        assert m.name_zh in text_zh and m.description_zh in text_zh
        assert m.description in text_en
    assert set(stream_names().values()) == {"参保登记", "缴费", "结算", "结算清单", "经办事项"}


def test_target_miss_names_top_contributors_once_breakdown_exists(wh_path):
    """Issue 15: a target miss "names the three institutions or matters that
    contribute most to the shortfall once the drill-down exists"."""
    run = add_run(wh_path, "r1", T0, indicator_values=[indicator_row("I08", "640100", "pooling",
                                                                     value=0.9, denominator=100)])
    (before,) = evaluate(wh_path, run, only("target_miss"), T0)
    assert before.observation.context["contributors"] == []
    assert "缺口最大" not in before.text_zh

    con = connect(wh_path)
    try:
        con.execute("""CREATE TABLE IF NOT EXISTS indicator_breakdown (
            indicator_code VARCHAR, region_code VARCHAR, region_level VARCHAR,
            period_type VARCHAR, period_start DATE, period_end DATE, pipeline VARCHAR,
            dimension VARCHAR, member_code VARCHAR, numerator DECIMAL(38, 6),
            denominator DECIMAL(38, 6), value DOUBLE, target DOUBLE, run_id VARCHAR,
            computed_at TIMESTAMPTZ)""")
        con.execute("""CREATE TABLE IF NOT EXISTS dim_institution (
            fixmedins_code VARCHAR, name VARCHAR, level VARCHAR, type VARCHAR,
            region_code VARCHAR, pooling_code VARCHAR, in_reference BOOLEAN)""")
        # Members add up to the region's 90 / 100.
        members = {"H64010400001": (33, 40), "H64010400002": (20, 20),
                   "H64010400003": (22, 25), "H64010400004": (15, 15)}
        rows = [("I08", "640100", "pooling", "MONTH", dt.date(2023, 5, 1), dt.date(2023, 5, 31),
                 "nightly", "institution", code, num, den, num / den, 0.99, "r1", T0)
                for code, (num, den) in members.items()]
        con.executemany("INSERT INTO indicator_breakdown (indicator_code, region_code,"
                        " region_level, period_type, period_start, period_end, pipeline, dimension,"
                        " member_code, numerator, denominator, value, target, run_id, computed_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("INSERT INTO dim_institution (fixmedins_code, name, in_reference) VALUES"
                    " ('H64010400001', '银川市第一人民医院', true),"
                    " ('H64010400003', '兴庆区社区卫生服务中心', true)")
    finally:
        con.close()
    (after,) = evaluate(wh_path, run, only("target_miss"), T0 + dt.timedelta(days=4))
    # Shortfalls at 99 %: 001 39.6 − 33 = 6.6, 003 24.75 − 22 = 2.75, 002 19.8 − 20 < 0,
    # 004 14.85 − 15 < 0: only two members fall short.
    got = [(c.code, c.name, round(c.shortfall, 2)) for c in after.observation.context["contributors"]]
    assert got == [("H64010400001", "银川市第一人民医院", 6.6),
                   ("H64010400003", "兴庆区社区卫生服务中心", 2.75)]
    assert "缺口最大的机构：银川市第一人民医院（H64010400001，差 7）、" in after.text_zh
    assert "Largest contributors to the shortfall: 银川市第一人民医院" in after.text_en


def test_operator_mistakes_end_in_one_line_and_status_2(tmp_path, capsys, wh_path):
    from pipelines.cli import main

    assert main(["alerts", "evaluate", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yibao alerts: no warehouse at ")
    assert main(["alerts", "evaluate", "--warehouse", wh_path, "--run-id", "nope"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("yibao alerts: no pipeline run nope to evaluate")


def test_a_channel_that_is_down_is_not_retried_for_every_alert(wh_path, robot):
    """Probe: a DingTalk robot that refuses connections made one nightly
    spend ~14 s of retries per alert ("NOT delivered to ding4 (206 alerts;
    URLError: <urlopen error [Errno 111] Connection refused>)", over 20
    minutes with the shipped delivery policy). Once a channel has failed
    every attempt, the rest of the evaluation's alerts skip it (recorded)."""
    server, base = robot
    run = add_run(wh_path, "r1", T0, quality_rule_results=[
        rule_row(rule=r, failed=40) for r in ("T04", "T05", "T06")])
    section = only("pass_rate")
    section["delivery"] = {**FAST, "attempts": 2}
    section["channels"] = {"log": {"type": "log"},
                           "hook": {"type": "webhook", "url": f"{base}/broken"}}

    alerts = evaluate(wh_path, run, section, T0)

    assert len(alerts) == 3
    assert len(server.received) == 2  # two attempts for the first alert, none after
    hooks = [{c["channel"]: c for c in a.channels}["hook"] for a in alerts]
    assert [h["attempts"] for h in hooks] == [2, 0, 0]
    assert "HTTP Error 500" in hooks[0]["error"]
    assert all(h["error"].startswith("not tried: channel hook failed earlier in this evaluation")
               for h in hooks[1:])
    assert all({c["channel"]: c for c in a.channels}["log"]["ok"] for a in alerts)


def test_alerts_evaluate_exits_1_when_an_alert_was_not_delivered(wh_path, tmp_path, capsys):
    """Known defect: "alerts exit 0 when a channel fails" — a scheduler that
    runs `yibao alerts evaluate` after a flex-template job saw success while
    no one was told.  Now: exit 1 and one stderr line naming the channel."""
    from pipelines.cli import main

    add_run(wh_path, "r1", T0, quality_rule_results=[rule_row(failed=40)])
    refused = f"http://127.0.0.1:{_free_port()}/hook"
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(json.dumps({"alerts": {
        **only("pass_rate"), "delivery": {**FAST, "attempts": 1},
        "channels": {"ops_hook": {"type": "webhook", "url": refused}}}}), encoding="utf-8")
    argv = ["alerts", "evaluate", "--warehouse", f"duckdb:///{wh_path}", "--run-id", "r1",
            "--config", str(cfg), "--now", "2023-06-01T10:00:00+08:00"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "NOT DELIVERED" in out and "1 alert rows written to dq_alerts" in out
    (line,) = err.strip().splitlines()
    assert line.startswith("yibao alerts: NOT delivered to ops_hook (1 of 1 alerts; URLError")
    assert line.endswith("check the channel with `yibao alerts test`")
    assert len(dq_rows(wh_path)) == 1  # the row is written all the same

    # Once the channel is reachable again (here: only the log), the exit is 0.
    cfg.write_text(json.dumps({"alerts": {
        **only("pass_rate"), "delivery": FAST, "quiet_hours": 0,
        "channels": {"log": {"type": "log"}}}}), encoding="utf-8")
    assert main(argv[:-1] + ["2023-06-02T10:00:00+08:00"]) == 0
