"""Keeping channel credentials out of logs, exception texts and dq_alerts.

Robot and webhook URLs are credentials (DingTalk ``access_token``, WeCom
``key``, tokens in a webhook's path), and so are the DingTalk signing
secret, the signed URL and the SMTP password.  Exception texts quote them
freely: ``http.client`` puts the whole request path and query in
``InvalidURL``, urllib's host parsing quotes ``user:password@host``.  So
every text leaving a channel passes through ``redact`` — log lines, the
error stored in dq_alerts.channels, what ``yibao alerts test`` prints —
and ``describe`` is the only way a channel's destination is shown.

Two layers: the channel's own secret values (and their escaped, quoted and
stripped forms, and the parts of a URL) are replaced wherever they appear;
and any URL, ``name=value`` credential parameter or userinfo left is cut
down to what identifies the destination without opening it.
"""
from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterable, Mapping

MASK = "***"
#: Channel settings whose values are secrets (a ``<key>_env`` names the variable, not the value).
SECRET_SETTINGS = ("url", "secret", "password", "token")
#: Query and form parameters that carry credentials or a signature.
SECRET_PARAMS = ("access_token", "token", "key", "sign", "signature", "secret", "password",
                 "passwd", "pwd", "apikey", "api_key", "auth", "timestamp")
#: Shorter values are not replaced inside text (they would mangle it); the patterns still apply.
MIN_SECRET_LEN = 4
#: A URL path segment this long is treated as a token (Slack, Feishu and similar hook URLs).
TOKEN_SEGMENT_LEN = 16

_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)://([^\s/?#'\"<>]*)([^\s'\"<>]*)")
_PARAM = re.compile(r"(?i)\b(" + "|".join(SECRET_PARAMS) + r")(=|%3D)([^&\s'\"<>]*)")


def _forms(value: str) -> set[str]:
    """The ways a value shows up in exception texts and URLs."""
    out = set()
    for v in {value, value.strip()}:
        out |= {v, repr(v)[1:-1], v.encode("unicode_escape").decode("ascii"),
                urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v),
                urllib.parse.quote(v, safe="/:?=&@")}
    return {v for v in out if len(v) >= MIN_SECRET_LEN}


def _url_parts(url: str) -> set[str]:
    """The URL, its userinfo, query values and token-like path segments
    (``http.client`` quotes only path and query, urllib only the host part)."""
    url = url.strip()
    rest = url.partition("://")[2] or url
    netloc, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    userinfo = netloc.rpartition("@")[0]
    parts = {url, userinfo, *userinfo.split(":", 1)} if userinfo else {url}
    parts |= {v for _, v in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    parts |= {s for s in path.split("/") if len(s) >= TOKEN_SEGMENT_LEN}
    return {p for p in parts if p}


def secrets_of(channels: Iterable[Mapping]) -> set[str]:
    """Every form of every secret in these channel settings."""
    out: set[str] = set()
    for spec in channels:
        for key in SECRET_SETTINGS:
            value = spec.get(key)
            if not isinstance(value, str) or not value:
                continue
            for v in _url_parts(value) if key == "url" else {value}:
                out |= _forms(v)
    return out


def _cut_url(m: re.Match) -> str:
    scheme, netloc, rest = m.group(1), m.group(2), m.group(3)
    host = netloc.rpartition("@")[2]
    return f"{scheme}://{host}" + ("/…" if rest else "")


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` with the known ``secrets`` and anything credential-shaped masked."""
    out = str(text)
    for s in sorted(set(secrets), key=len, reverse=True):  # longest first: a URL before its parts
        out = out.replace(s, MASK)
    out = _URL.sub(_cut_url, out)
    return _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)


def describe(spec: Mapping) -> str:
    """Where a channel sends, safe to log and store: scheme and host of a URL,
    host and recipients of e-mail (addresses are not secrets)."""
    kind = spec.get("type")
    if kind == "email":
        to = spec.get("to") or []
        to = [to] if isinstance(to, str) else list(to)
        return redact(f"smtp://{spec.get('host') or '?'} to {', '.join(map(str, to))}",
                      secrets_of([spec]))
    url = spec.get("url")
    if not isinstance(url, str) or not url.strip():
        return str(kind or "?")
    m = _URL.search(url.strip())
    described = f"{m.group(1)}://{m.group(2).rpartition('@')[2]}" if m else "(not a URL)"
    return redact(described, secrets_of([spec]))


class RedactingFilter(logging.Filter):
    """Last line of defence on the ``alerting`` logger: whatever a record says,
    URLs and credential parameters in it are cut down before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(logger: logging.Logger) -> None:
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
