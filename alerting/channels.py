"""Delivery: log, generic JSON webhook, DingTalk and WeCom robots, e-mail.

Each sender raises on failure; ``deliver`` retries with exponential backoff
(bounded), never raises, and returns one result per channel for
dq_alerts.channels — a failure is recorded (and summed up in the run's one
alert log line, alerting/summary.py), never silent and never the
pipeline's failure.  Robot URLs carry access tokens: every error text and
log line passes through alerting/redact.py, and a channel's destination is
recorded only as ``redact.describe`` shows it (scheme and host).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import smtplib
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape

from alerting.config import Delivery
from alerting.model import Alert
from alerting.redact import describe, install, redact, secrets_of

log = logging.getLogger("alerting")
install(log)

WECOM_MAX_BYTES = 4096  # WeCom rejects longer markdown content
DINGTALK_MAX_BYTES = 20000


def _now_ms() -> int:
    return int(time.time() * 1000)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: base64(HMAC-SHA256(key=secret, timestamp + "\\n" + secret)),
    URL-encoded by the caller."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    if not secret:
        return url
    ts = _now_ms() if timestamp_ms is None else timestamp_ms
    sign = urllib.parse.quote_plus(dingtalk_sign(secret, ts))
    return f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={sign}"


def _post_json(url: str, body: dict, timeout: float) -> dict | None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    split = urllib.parse.urlsplit(url)
    if split.username is not None:
        # urllib does not send https://user:pass@host credentials; HTTP Basic does.
        user = urllib.parse.unquote(split.username)
        password = urllib.parse.unquote(split.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
        url = urllib.parse.urlunsplit(split._replace(netloc=split.netloc.rpartition("@")[2]))
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # HTTP >= 400 raises
        raw = resp.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _robot_check(reply: dict | None, robot: str) -> None:
    # Both robots answer HTTP 200 with {"errcode": 0, "errmsg": "ok"}; anything else failed.
    if not isinstance(reply, dict) or reply.get("errcode") != 0:
        raise RuntimeError(f"{robot} refused the message: {reply!r}")


def _truncate(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


def markdown(alert: Alert) -> str:
    """Markdown both robots render: heading, paragraphs, a quoted SQL block."""
    sql = "\n".join(f"> {line}" for line in alert.sql.splitlines())
    return (f"### {alert.title_zh}\n\n{alert.text_zh}\n\n{alert.text_en}\n\n"
            f"**下钻查询 Drill-down SQL**\n\n{sql}\n")


def send_log(spec: Mapping, alert: Alert, timeout: float) -> None:
    # INFO: the run's WARNING is the one summary line; the alerts themselves
    # are in dq_alerts and on the robots (YIBAO_LOG_LEVEL=INFO shows them here).
    log.info("%s | %s", alert.title_zh, alert.text_zh)


def send_webhook(spec: Mapping, alert: Alert, timeout: float) -> None:
    _post_json(_required(spec, "url"), alert.payload(), timeout)


def send_dingtalk(spec: Mapping, alert: Alert, timeout: float) -> None:
    body = {"msgtype": "markdown",
            "markdown": {"title": alert.title_zh,
                         "text": _truncate(markdown(alert), DINGTALK_MAX_BYTES)}}
    if spec.get("at_mobiles") or spec.get("at_all"):
        body["at"] = {"atMobiles": list(spec.get("at_mobiles") or []),
                      "isAtAll": bool(spec.get("at_all"))}
    url = dingtalk_url(_required(spec, "url"), spec.get("secret"))
    _robot_check(_post_json(url, body, timeout), "DingTalk")


def send_wecom(spec: Mapping, alert: Alert, timeout: float) -> None:
    body = {"msgtype": "markdown",
            "markdown": {"content": _truncate(markdown(alert), WECOM_MAX_BYTES)}}
    _robot_check(_post_json(_required(spec, "url"), body, timeout), "WeCom")


def email_message(spec: Mapping, alert: Alert) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = alert.title_zh  # non-ASCII: RFC 2047 encoded-word, UTF-8
    msg["From"] = spec.get("from") or "yibao-alerts@localhost"
    to = spec.get("to")
    msg["To"] = ", ".join([to] if isinstance(to, str) else to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="yibao.alerts")
    text = f"{alert.text_zh}\n\n{alert.text_en}\n\n下钻查询 Drill-down SQL:\n{alert.sql}\n"
    msg.set_content(text, charset="utf-8", cte="base64")
    msg.add_alternative(
        f"<html><body><h3>{escape(alert.title_zh)}</h3><p>{escape(alert.text_zh)}</p>"
        f"<p>{escape(alert.text_en)}</p><p>下钻查询 Drill-down SQL:</p>"
        f"<pre>{escape(alert.sql)}</pre></body></html>",
        subtype="html", charset="utf-8", cte="base64")
    return msg


def send_email(spec: Mapping, alert: Alert, timeout: float) -> None:
    _required(spec, "to")
    smtp_class = smtplib.SMTP_SSL if spec.get("ssl") else smtplib.SMTP
    with smtp_class(_required(spec, "host"), int(spec.get("port") or 25), timeout=timeout) as smtp:
        if spec.get("starttls"):
            smtp.starttls()
        if spec.get("username"):
            smtp.login(spec["username"], spec.get("password") or "")
        smtp.send_message(email_message(spec, alert))


def _required(spec: Mapping, key: str):
    if not spec.get(key):
        raise ValueError(f"channel setting {key!r} missing (or its {key}_env variable unset)")
    return spec[key]


SENDERS: dict[str, Callable[[Mapping, Alert, float], None]] = {
    "log": send_log, "webhook": send_webhook, "dingtalk": send_dingtalk,
    "wecom": send_wecom, "email": send_email,
}


def deliver(alert: Alert, channels: Mapping[str, Mapping], policy: Delivery,
            sleep: Callable[[float], None] = time.sleep,
            down: dict[str, str] | None = None) -> list[dict]:
    """Send to each channel with bounded retries; one result dict per channel
    (channel, type, target as ``describe`` shows it, ok, attempts, error —
    redacted). A channel that failed every attempt goes into ``down`` and is
    not tried again by a call given the same dict (one evaluation): a dead
    robot would otherwise cost the whole retry budget for every alert."""
    secrets = secrets_of(channels.values())
    results = []
    for name, spec in channels.items():
        if down is not None and name in down:
            results.append({"channel": name, "type": spec.get("type"), "target": describe(spec),
                            "ok": False, "attempts": 0, "error": "not tried: channel "
                            f"{name} failed earlier in this evaluation ({down[name]})"})
            continue
        sender = SENDERS.get(spec.get("type"))
        attempts, error = 0, None
        delay = min(float(policy.backoff_seconds), float(policy.backoff_max_seconds))
        while attempts < max(1, int(policy.attempts)):
            attempts += 1
            try:
                if sender is None:
                    raise ValueError(f"unknown channel type {spec.get('type')!r}")
                sender(spec, alert, float(policy.timeout_seconds))
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, then retried
                error = redact(f"{type(exc).__name__}: {exc}", secrets)
                if sender is None or attempts >= policy.attempts:
                    break
                log.info("alert %s: channel %s attempt %d failed (%s); retrying in %.2fs",
                         alert.alert_id, name, attempts, error, delay)
                sleep(delay)
                delay = min(delay * 2, float(policy.backoff_max_seconds))
        if error:
            log.info("alert %s NOT delivered to channel %s after %d attempts: %s",
                     alert.alert_id, name, attempts, error)
            if down is not None:
                down[name] = error
        results.append({"channel": name, "type": spec.get("type"), "target": describe(spec),
                        "ok": error is None, "attempts": attempts, "error": error})
    return results
