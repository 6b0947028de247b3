"""Targets, parameters and the official working-day calendar:
``defaults.yaml`` shipped with the package, overridden key by key by
``--config FILE`` (same shape)."""
from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.errors import UsageError
from transforms.timeutil import WorkCalendar, parse_calendar

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
    source: str = field(default="config", compare=False)  # names the file in error messages

    @property
    def parameters(self) -> dict:
        return self.raw.get("parameters", {})

    @functools.cached_property
    def calendar(self) -> WorkCalendar:
        """Working days: the ``calendar:`` years, else chinesecalendar, else Mon–Fri."""
        return parse_calendar(self.raw.get("calendar"), self.source)

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
        raw = merge(raw, _read_yaml(str(path)))
    config = Config(raw, str(path) if path else DEFAULTS.name)
    _ = config.calendar  # a malformed calendar stops here, before anything runs
    return config


def _read_text(path: str) -> str:
    """A local file, or any path Beam's FileSystems knows (gs://: the flex
    template's --config)."""
    if "://" not in path:
        return Path(path).read_text(encoding="utf-8")
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        raise FileNotFoundError(2, "no such object")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        return fh.read().decode("utf-8")


def _read_yaml(path: str) -> dict:
    """The override file; unreadable or malformed (PyYAML raises ValueError for
    an impossible date such as 2027-02-30) is one UsageError line."""
    try:
        text = _read_text(path)
    except OSError as e:
        raise UsageError(f"--config {path}: cannot read it ({e.strerror or e}): give a YAML file "
                         f"shaped like {DEFAULTS.name}") from None
    try:
        return yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError) as e:
        raise UsageError(f"{path}: not valid YAML ({' '.join(str(e).split())}): fix that line "
                         "(dates are YYYY-MM-DD)") from None


def calendar_sources(config: Config, years: Iterable[int]) -> dict[int, str]:
    """Year -> the source serving its working days: config | chinesecalendar
    | weekdays (no official calendar: Monday–Friday, logged as a warning)."""
    return config.calendar.sources(years)
