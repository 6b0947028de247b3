"""Targets and parameters: ``defaults.yaml`` shipped with the package,
overridden key by key by ``--config FILE`` (same shape)."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parent / "defaults.yaml"


def merge(base: dict, override: Mapping | None) -> dict:
    """``override`` laid over ``base`` key by key (nested mappings merge)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Config:
    raw: dict

    @property
    def parameters(self) -> dict:
        return self.raw.get("parameters", {})

    def target(self, code: str, year: int, region_code: str | None = None) -> float | None:
        """Most specific target: region+year, region, year, default."""
        spec = self.raw.get("targets", {}).get(code)
        if spec is None:
            return None
        by_region = (spec.get("by_region") or {}).get(region_code) if region_code else None
        if isinstance(by_region, dict):
            by_year = by_region.get("by_year") or {}
            if year in by_year or str(year) in by_year:
                return float(by_year.get(year, by_year.get(str(year))))
            if "default" in by_region:
                return float(by_region["default"])
        elif by_region is not None:
            return float(by_region)
        by_year = spec.get("by_year") or {}
        if year in by_year or str(year) in by_year:
            return float(by_year.get(year, by_year.get(str(year))))
        return float(spec["default"]) if "default" in spec else None


def load_config(path: str | Path | None = None) -> Config:
    raw = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))
    if path:
        raw = merge(raw, yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    return Config(raw)
