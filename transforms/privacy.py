"""Personal data never reaches the warehouse or the logs (ARCHITECTURE.md):
psn_no is pseudonymised with HMAC-SHA256 under ``YIBAO_PSEUDONYM_KEY``;
certno is masked (first 6 + ``********`` + last 4); names are dropped."""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os

log = logging.getLogger(__name__)

#: Public, so pseudonyms made with it protect nothing: demo and tests only.
DEMO_KEY = "yibao-demo-key-not-secret"
PERSONAL_FIELDS = ("certno", "psn_name", "psn_no")


@functools.cache
def pseudonym_key() -> bytes:
    key = os.environ.get("YIBAO_PSEUDONYM_KEY")
    if not key:
        log.warning("YIBAO_PSEUDONYM_KEY is not set: using the public demo key (demo use only)")
        key = DEMO_KEY
    return key.encode("utf-8")


def pseudonymise(psn_no: str | None) -> str | None:
    if psn_no is None:
        return None
    return hmac.new(pseudonym_key(), psn_no.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_certno(certno: str | None) -> str | None:
    if certno is None:
        return None
    return certno[:6] + "********" + certno[-4:] if len(certno) > 10 else "*" * len(certno)


def masked(values: dict) -> dict:
    """A record's values made safe for the warehouse: pseudonymised psn_no,
    masked certno, no name."""
    out = {}
    for k, v in values.items():
        if k == "psn_name":
            continue
        out[k] = pseudonymise(v) if k == "psn_no" else mask_certno(v) if k == "certno" else v
    return out
