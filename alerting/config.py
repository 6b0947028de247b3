"""The ``alerts:`` section of pipelines/defaults.yaml (the one config file).

Whatever the caller hands over — a ``Config`` from ``load_config``, the
whole raw dict, just the ``alerts`` section, a YAML path or nothing — is
merged over the shipped section, so a test or an override names only what
it changes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Config, load_config
from pipelines.config import merge as _merge
from pipelines.errors import UsageError

CHECKS = ("pass_rate", "target_miss", "anomaly", "silence", "dead_letters", "calendar_missing")
CHANNEL_TYPES = ("log", "webhook", "dingtalk", "wecom", "email")


def resolve_env(spec: Mapping) -> dict:
    """``<key>_env: VAR`` -> ``<key>: $VAR`` (secrets stay out of the YAML)."""
    out = dict(spec)
    for key, var in spec.items():
        if key.endswith("_env") and var:
            value = os.environ.get(str(var))
            if value is not None and not out.get(key[:-4]):
                out[key[:-4]] = value
    return out


def clean_channel(spec: Mapping) -> dict:
    """A URL or secret pasted with a trailing newline or spaces (``echo`` into
    a secret store) would make every delivery fail: surrounding whitespace
    is never part of them."""
    out = dict(spec)
    for key in ("url", "secret"):
        if isinstance(out.get(key), str):
            out[key] = out[key].strip()
    return out


def in_scope(value, allowed) -> bool:
    """``allowed`` is ``all``/None (everything) or a list."""
    if allowed is None or allowed == "all":
        return True
    if isinstance(allowed, str):
        allowed = [allowed]
    return value in allowed


@dataclass(frozen=True)
class Delivery:
    attempts: int = 4
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 60.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class AlertConfig:
    raw: dict

    def check(self, kind: str) -> dict:
        return self.raw.get(kind) or {}

    def enabled(self, kind: str) -> bool:
        return bool(self.check(kind).get("enabled", False))

    def quiet_seconds(self, kind: str) -> float:
        hours = self.check(kind).get("quiet_hours", self.raw.get("quiet_hours", 72))
        return float(hours) * 3600

    @property
    def delivery(self) -> Delivery:
        d = self.raw.get("delivery") or {}
        return Delivery(**{k: d[k] for k in Delivery.__dataclass_fields__ if k in d})

    def channels(self, kind: str | None = None) -> dict[str, dict]:
        """Enabled channels (env secrets resolved) an alert of ``kind`` goes to."""
        wanted = self.check(kind).get("channels") if kind else None
        out = {}
        for name, spec in (self.raw.get("channels") or {}).items():
            spec = dict(spec or {})
            if spec.get("enabled", True) and in_scope(name, wanted):
                out[name] = clean_channel(resolve_env(spec))
        return out

    def validate(self) -> AlertConfig:
        for name, spec in (self.raw.get("channels") or {}).items():
            if (spec or {}).get("type") not in CHANNEL_TYPES:
                raise UsageError(f"alerts.channels.{name}: type must be one of {CHANNEL_TYPES}"
                                 " — fix the channel's type in the config")
        unknown = set(self.raw) - {*CHECKS, "channels", "delivery", "quiet_hours"}
        if unknown:
            raise UsageError(f"alerts: unknown keys {sorted(unknown)} — allowed: checks "
                             f"{list(CHECKS)}, channels, delivery, quiet_hours")
        return self


def alert_config(config: Config | Mapping | str | Path | AlertConfig | None = None) -> AlertConfig:
    if isinstance(config, AlertConfig):
        return config
    shipped = load_config().raw.get("alerts") or {}
    if config is None:
        section = {}
    elif isinstance(config, Config):
        section = config.raw.get("alerts") or {}
    elif isinstance(config, str | Path):
        section = load_config(config).raw.get("alerts") or {}
    elif "alerts" in config:
        section = config["alerts"] or {}
    else:
        section = config
    return AlertConfig(_merge(shipped, section)).validate()
