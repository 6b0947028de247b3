"""Checks on what the operator asked for, before anything is read or written.

Each failure is one :class:`~pipelines.errors.UsageError` line saying what is
wrong and what to do (``yibao`` exits 2).  Options are checked first (no
pipeline_runs row: nothing ran); the input listing and the reference data are
checked after the run's row is opened, so a refused run is recorded as failed
with its reason.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

import schemas
from pipelines.errors import UsageError
from transforms.context import month_range
from transforms.landing import list_landed
from transforms.timeutil import business_date, parse_instant

_LAST_YEAR = 9998  # calendar years and month ends reach into the next year
_MONTHS = re.compile(r"^\d{4}-\d{2}(\.\.\d{4}-\d{2})?$")


def as_of(text: str | None) -> dt.datetime:
    """``--as-of``: absent means now; an empty or malformed value is a mistake
    (``--as-of ""`` used to mean now without a word)."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    if not text.strip():
        raise UsageError('--as-of is empty: give an ISO 8601 instant such as '
                         '2023-12-31T23:59:59+08:00, or leave the option out to mean now')
    try:
        instant = parse_instant(text)
    except ValueError:
        raise UsageError(f"--as-of {text!r} is not an ISO 8601 instant: write e.g. "
                         "2023-12-31T23:59:59+08:00 (a time without offset is Beijing time)") from None
    except OverflowError:  # 0001-01-01T00:00 Beijing time is before year 1 in UTC
        instant = None
    if instant is None or not 1 <= business_date(instant).year <= _LAST_YEAR:
        raise UsageError(f"--as-of {text!r} is outside the years 1-{_LAST_YEAR} "
                         "(its month, year and next day must exist)")
    return instant


def months(spec: str | None, as_of_instant: dt.datetime, max_months: int) -> list[dt.date]:
    """``--months A..B`` (default: January of as_of's year to as_of's month),
    well-formed, in order and at most ``max_months`` long (a runaway range
    materialises per-month work).  Months after as_of are allowed but the
    run's summary warns about months without data."""
    last = business_date(as_of_instant).replace(day=1)
    if spec is None:
        return month_range(f"{last.year}-01..{last:%Y-%m}")
    if not _MONTHS.match(spec.strip()):
        raise UsageError(f"--months {spec!r}: write YYYY-MM..YYYY-MM (or one YYYY-MM), e.g. 2023-01..2023-12")
    start, _, end = spec.strip().partition("..")
    (fy, fm), (ly, lm) = ((int(x) for x in part.split("-")) for part in (start, end or start))
    for part, year, month in ((start, fy, fm), (end or start, ly, lm)):
        if not 1 <= month <= 12:
            raise UsageError(f"--months {spec!r}: {part} is not a month")
        if not 1 <= year <= _LAST_YEAR:  # a month's end and the next year must exist too
            raise UsageError(f"--months {spec!r}: {part} is outside the years 1-{_LAST_YEAR}")
    span = (ly - fy) * 12 + lm - fm + 1
    if span < 1:
        raise UsageError(f"--months {spec!r} is reversed: write the earlier month first ({end}..{start})")
    if span > max_months:
        raise UsageError(f"--months {spec!r} spans {span} months, more than parameters.max_months "
                         f"= {max_months}: split the backfill into shorter runs or raise the limit "
                         "in --config")
    return month_range(spec.strip())


def known_options(argv: list[str]) -> None:
    """A mistyped option (``--asof``, ``--month``) or a stray word is refused:
    Beam only logs "Discarding unparseable args" and the run goes on with the
    default (as_of now: a year of 0/0 published).  Known = what Beam itself
    parses: every PipelineOptions subclass, NightlyOptions included."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class Parser(_BeamArgumentParser):
        def error(self, message):  # argparse would print the usage of ~200 options and exit
            raise UsageError(f"{message} — yibao nightly --help lists the options")

    parser = Parser(allow_abbrev=False, add_help=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        raise UsageError(f"unknown option or stray argument {' '.join(unknown)!r} — yibao nightly "
                         "--help lists the options (any Beam pipeline option is accepted too)")


def allow_empty(spec: str | None) -> set[str]:
    """``--allow-empty settlement,filing`` or ``all``."""
    if not spec:
        return set()
    names = {s.strip() for s in spec.split(",") if s.strip()}
    if "all" in names:
        return set(schemas.STREAM_NAMES)
    unknown = sorted(names - set(schemas.STREAM_NAMES))
    if unknown:
        raise UsageError(f"--allow-empty: unknown stream {', '.join(unknown)} "
                         f"(streams: {', '.join(schemas.STREAM_NAMES)}, or all)")
    return names


@dataclass
class InputListing:
    """The files of a run's input, per stream."""

    avro: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # not *.avro: listed, never read
    patterns: dict[str, list[str]] = field(default_factory=dict)  # what ReadStream matches
    skipped_partitions: dict[str, list[str]] = field(default_factory=dict)  # dt=… left out
    bytes: int = 0  # size of the *.avro files read (the default --shards follows it)

    def empty_streams(self) -> list[str]:
        return [s for s in schemas.STREAM_NAMES if not self.avro.get(s)]


def list_input(root: str, months: list[dt.date] | None = None,
               all_partitions: bool = False) -> InputListing:
    """Lists ``<root>/<stream>/*`` and the ``dt=`` partitions the run's months
    need (pipelines/partitions.py); a missing local root is a mistake."""
    from pipelines import partitions

    if "://" not in root and not os.path.isdir(root):
        raise UsageError(f"--input {root}: no such directory (expected <input>/<stream>/*.avro "
                         "for the streams " + ", ".join(schemas.STREAM_NAMES) + ")")
    listing = InputListing()
    for stream in schemas.STREAM_NAMES:
        # The delivery rule of transforms/landing.py: dot/underscore names are
        # files still being written, links are followed (a broken one is read
        # and dead-lettered).
        landed = list_landed(FileSystems.join(root, stream, "*"))
        found = [f.path for f in landed]
        listing.avro[stream] = [p for p in found if p.endswith(".avro")]
        listing.bytes += sum(f.size for f in landed if f.path.endswith(".avro"))
        listing.ignored += [p for p in found if not p.endswith(".avro")]
        parts = partitions.layout(root, stream, months or [], all_partitions)
        listing.avro[stream] += parts.files
        listing.ignored += parts.other
        listing.patterns[stream] = parts.patterns
        listing.skipped_partitions[stream] = parts.skipped
        listing.bytes += parts.bytes
    return listing


def refuse_empty(listing: InputListing, allowed: set[str]) -> None:
    """A stream without files would publish 0/0 over good figures."""
    empty = [s for s in listing.empty_streams() if s not in allowed]
    if not empty:
        return
    if len(empty) == len(schemas.STREAM_NAMES):
        raise UsageError("the input has no *.avro file in any stream folder: nothing to compute "
                         "(check --input; --allow-empty all publishes zeros on purpose)")
    raise UsageError(f"no *.avro files for {', '.join(empty)}: publishing would replace "
                     f"{'its' if len(empty) == 1 else 'their'} indicators with zeros; add the files, "
                     f"or pass --allow-empty {','.join(empty)} to publish anyway")


def remote_paths(runner: str | None, warehouse: str, staging: str | None, quarantine: str | None) -> None:
    """Under Dataflow a local path lands on a worker disk that disappears
    (ARCHITECTURE.md "Production path"): staging and quarantine must be
    gs:// and the warehouse BigQuery."""
    if str(runner or "") != "DataflowRunner":
        return
    if not warehouse.startswith("bigquery://"):
        raise UsageError(f"--warehouse {warehouse}: under DataflowRunner the warehouse must be "
                         "bigquery://PROJECT/DATASET (a DuckDB file would be written on a worker)")
    for flag, path in (("--staging", staging), ("--quarantine", quarantine)):
        if not (path or "").startswith("gs://"):
            raise UsageError(f"{flag} {path or '(default: a local folder)'}: under DataflowRunner "
                             f"give a gs:// prefix ({flag} gs://BUCKET/...); local paths are worker "
                             "disks that disappear")


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def run_id(text: str) -> str:
    """``--run_id`` (an orchestrator's): it names the staging prefix
    ``<staging>/<run_id>/``, so one path segment of plain characters."""
    if not _RUN_ID.match(text) or ".." in text:
        raise UsageError(f"--run_id {text!r}: use letters, digits, '-', '_' or '.' (at most 128), "
                         "e.g. a UUID")
    return text
