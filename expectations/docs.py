"""``yibao quality-docs``: the Data Docs, a folder of HTML pages that opens
offline — our pages per region and month (``docs_pages``: index.html and
regions/<code>/<YYYY-MM>.html, in Chinese, headline the record pass rate,
figures equal to the nightly run's) and Great Expectations' own pages of each
stream's latest validation (ge-index.html, validations/, expectations/).

    yibao quality-docs --input DIR [--as-of T | --warehouse URI] [--reference DIR] [--out DIR]
                       [--months A..B] [--config YAML] [--sample N] [--allow-demo-key]

0. The per-region pages: the input read as below, all records, then the
   nightly run's own computation (``transforms.compute.compute_run``) at
   as_of over the months (default: the --warehouse run's, else as nightly's).
   psn_no is pseudonymised, so the key is required as for nightly.

1. Read ``<input>/<stream>/*.avro`` as the nightly pipeline does
   (``transforms.decode.read_avro_file``; undecodable bytes are counted,
   not quarantined: that is the nightly run's job), keep one copy per
   event_id and the latest version per business key at as_of
   (``transforms.versions``).
2. Sample (Great Expectations' pages only): Great Expectations checks some 30-60k rows/s, so at most
   ``--sample`` records per stream are validated — whole hash buckets of
   the business key (of certno for enrolment, so E09's 310/390 pairs stay
   together), the same records on every run (DuckDB's ``hash``).  Pages and
   output say so.
3. Validate unmasked with the real suites (``ge_runner.ge_suite``) in an
   ephemeral context, analytics off; each expectation is labelled with its
   rule (``description``) for the pages.
4. Render masked: results are SUMMARY (counts and at most 20 example
   values per expectation); in the examples of an expectation that reads a
   personal column, certno is masked as in quality_failures (region code
   only: first 6, then ``*``), psn_no pseudonymised like the warehouse's keys,
   and a name keeps only what E02 judges (length, digits, White_Space).
   Masking after validation cannot change a verdict; a page still showing
   a raw value of an example row stops the build and removes the site.
5. Build the site into ``--out`` and make it self-contained: every CDN link
   points to the copies in ``expectations/vendor/`` (README there); a page
   naming any other remote resource or a missing file stops the build.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import html
import json
import os
import re
import shutil
import tempfile
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

import reference
import schemas
from transforms.compute import connect
from transforms.context import RunContext, default_months
from transforms.decode import read_avro_file, table_schema
from transforms.privacy import PERSONAL_FIELDS, mask_certno, pseudonymise
from transforms.timeutil import BUSINESS_TZ, parse_instant
from transforms.versions import latest_sql, resolve_deliveries

from . import docs_pages
from .docs_pages import PAGE_MARK
from .text import WHITE_SPACE

DEFAULT_OUT = "var/quality-docs"
DEFAULT_SAMPLE = 200_000
VENDOR = Path(__file__).with_name("vendor")
MARKER = ".yibao-quality-docs"  # marks a folder this command may wipe and rebuild
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
# Sampling unit per stream (default: the business key).
SAMPLE_UNIT = {"enrolment": "coalesce(certno, event_id)"}

# Every external resource of Great Expectations 1.24's pages -> its copy under vendor/.
CDN = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap@4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap@4.3.1/dist/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js@1.12.9/dist/umd/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free@6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/build/vega-embed.min.js",
}
# GE's logos come from its S3 bucket (with a cache-busting ?d=...): use the copy GE ships.
GE_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"')\s]*")
LOCAL_LOGO = "static/images/logo-long.png"
GE_STATIC = re.compile(r"""(["'(])(?:\./|(?:\.\./)+)static/""")
# file:// pages cannot use subresource integrity or CORS mode: the browser would refuse them.
SRI_ATTRS = re.compile(r"""\s+(?:integrity|crossorigin)=(?:"[^"]*"|'[^']*'|[^\s>]+)""")
REMOTE = re.compile(r"[a-z][a-z0-9+.-]*:|//", re.I)  # any scheme (http:, https:, ftp:...) or //host
CSS_URLS = re.compile(r"""(?:url\(\s*|@import\s+)["']?([^"')\s]+)""")


@dataclasses.dataclass
class StreamDocs:
    stream: str
    latest: int  # latest versions at as_of
    validated: int  # records validated (the sample)
    dead_letters: int  # files or blocks that could not be decoded
    failed_expectations: int = 0
    expectations: int = 0

    @property
    def note(self) -> str:
        if not self.latest:
            return f"{self.stream}: no records"
        scope = (f"sample of {self.validated:,} of {self.latest:,} latest versions"
                 if self.validated < self.latest else f"all {self.latest:,} latest versions")
        dead = f"; {self.dead_letters} undecodable file part(s) not read" if self.dead_letters else ""
        return f"{self.stream}: {scope}{dead}"


# --- reading: the nightly pipeline's decode, delivery and version rules ----------


def load_stream(con, input_dir: str, stream: str) -> int:
    """``{stream}_accepted`` on ``con`` from ``<input>/<stream>/*.avro``, as the
    nightly run makes it; returns the number of undecodable file parts."""
    pattern = FileSystems.join(input_dir, stream, "*.avro")
    paths = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    batches, dead = [], 0
    with tempfile.TemporaryDirectory() as quarantine_dir:
        for path in paths:
            got, letters, _ = read_avro_file(path, stream, quarantine_dir)
            batches += got
            dead += len(letters)
    con.register(f"{stream}_docs_raw", pa.Table.from_batches(batches, schema=table_schema(stream)))
    resolve_deliveries(con, stream, f"{stream}_docs_raw")
    return dead


def sampled_latest(con, stream: str, as_of: dt.datetime, sample: int | None) -> tuple[pa.Table, int]:
    """The stream's latest versions at as_of (at most ``sample`` of them) and how many there are."""
    latest = f"docs_{stream}_latest"
    con.execute(f"CREATE TEMP TABLE {latest} AS {latest_sql(stream, f'{stream}_accepted', as_of)}")
    total = con.execute(f"SELECT count(*) FROM {latest}").fetchall()[0][0]
    unit = SAMPLE_UNIT.get(stream) or ", ".join(schemas.load(stream).business_key)
    # count(*) over ORDER BY counts a hash's peers together: a unit is kept or dropped whole.
    keep = f"QUALIFY count(*) OVER (ORDER BY hash({unit})) <= {int(sample)}" if sample else ""
    table = con.sql(f"SELECT * EXCLUDE (_source, _index) FROM {latest} {keep} "
                    f"ORDER BY hash({unit}), event_id").to_arrow_table()
    return table, total


def latest_versions(input_dir: str, stream: str, as_of: dt.datetime,
                    sample: int | None) -> tuple[pa.Table, StreamDocs]:
    """The stream's latest versions at as_of (at most ``sample`` of them)."""
    con = connect()
    try:
        dead = load_stream(con, input_dir, stream)
        table, total = sampled_latest(con, stream, as_of, sample)
    finally:
        con.close()
    return table, StreamDocs(stream, total, table.num_rows, dead)


# --- masking: validate unmasked, render masked -------------------------------------


def mask_name(name: str) -> str:
    """What E02 judges (length, decimal digits, White_Space), not the name."""
    return "".join(c if c.isdecimal() or c in WHITE_SPACE else "*" for c in name)


MASKS = {"certno": mask_certno, "psn_no": pseudonymise, "psn_name": mask_name}
assert set(MASKS) == set(PERSONAL_FIELDS)  # a new personal field needs a mask here


def _masked(value, owner: dict[str, str]):
    """``value`` with every string that is a personal value (``owner``: value
    -> its column) replaced by its mask."""
    if isinstance(value, str):
        return MASKS[owner[value]](value) if value in owner else value
    if isinstance(value, dict):
        return {k: _masked(v, owner) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(v, owner) for v in value)
    return value


def _columns(config) -> list[str]:
    """The columns an expectation reads, in its own order."""
    kw = config.kwargs
    names = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *kw.get("column_list", ())]
    return [c for c in names if c]


def _readable(result: dict) -> dict:
    """A multi-column example as 'a | b | c' (GE's page would run the values together)."""
    for item in result.get("partial_unexpected_counts") or ():
        if isinstance(item.get("value"), list | tuple):
            item["value"] = " | ".join("null" if v is None else str(v) for v in item["value"])
    return result


def mask_results(result, frame) -> set[str]:
    """Masks, in the results of expectations reading a personal column, every
    value of that column in the frame, whatever shape GE gives the example
    values (scalars, dicts, lists); must run before anything reformats them.
    Returns the raw personal values of the example rows: no page may show them."""
    raw: set[str] = set()
    for res in result.results:
        personal = [c for c in _columns(res.expectation_config) if c in MASKS]
        if personal and res.result.get("unexpected_count"):
            owner = {v: c for c in personal for v in frame[c].dropna().unique()}
            rows = res.result.get("partial_unexpected_index_list") or []
            raw |= {v for c in personal for v in frame[c].iloc[rows].dropna() if len(v.strip()) > 1}
            res.result = _masked(res.result, owner)
    return raw


# --- the Data Docs site -------------------------------------------------------------


def _context(out: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(out)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                               analytics_enabled=False, data_docs_sites={"local": site},
                               progress_bars=ProgressBarsConfig(globally=False))
    context = gx.get_context(project_config=config, mode="ephemeral")
    context.data_sources.add_pandas("latest")  # batch ids read latest-<stream>
    return context


def _label(config) -> str:
    """The rule an expectation belongs to, shown instead of GE's generic sentence."""
    meta = config.meta
    columns = ", ".join(_columns(config))
    return f"{meta['rule_id']} ({meta['severity']}; {config.type} on {columns}): {meta['description']}"


def validate_stream(context, docs: StreamDocs, frame, ref, run_id) -> set[str]:
    """Validates ``frame`` with the stream's suite and stores the masked result;
    returns the raw personal values no page may show (``mask_results``)."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from .ge_runner import _errors, ge_suite
    from .parameters import suite_parameters

    suite = ge_suite(docs.stream)
    batch = (context.data_sources.get("latest").add_dataframe_asset(docs.stream)
             .add_batch_definition_whole_dataframe("latest")
             .get_batch(batch_parameters={"dataframe": frame}))
    with warnings.catch_warnings():  # GE's own pandas deprecations, not ours to fix
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        result = batch.validate(suite, result_format=RESULT_FORMAT,
                                expectation_parameters=suite_parameters(ref))
    for res in result.results:
        # a rule that could not run must not look passed (and its message may quote data)
        if errors := _errors(res.exception_info):
            raise RuntimeError(f"{res.expectation_config.type} "
                               f"({res.expectation_config.meta['rule_id']}) raised: {'; '.join(errors)}")
        res.expectation_config.description = _label(res.expectation_config)
    raw = mask_results(result, frame)
    for res in result.results:
        res.result = _readable(res.result)
    for expectation in suite.expectations:  # the suite page shows the same labels
        expectation.description = _label(expectation.configuration)
    context.suites.add(suite)
    result.meta["run_id"] = run_id
    key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=suite.name), run_id, batch.id)
    context.validation_results_store.set(key, result)
    docs.expectations = len(result.results)
    docs.failed_expectations = sum(not r.success for r in result.results)
    return raw


def _shown(as_of: dt.datetime) -> str:
    return as_of.astimezone(BUSINESS_TZ).isoformat()  # as the input's as_of.txt writes it


def _banner(as_of: dt.datetime, streams: list[StreamDocs]) -> str:
    sampled = any(s.validated < s.latest for s in streams)
    lines = "".join(f"<li>{html.escape(s.note)}</li>" for s in streams)
    caveat = (" Counts and percentages of a sampled stream are those of its sample"
              " (whole business keys; for enrolment whole persons, so E09 sees both"
              " records of a pair)." if sampled else "")
    return (f'<div class="alert alert-info m-2" id="yibao-scope"><strong>Validated:</strong> the '
            f"latest version of each business key at as_of {html.escape(_shown(as_of))}."
            f"{html.escape(caveat)} Personal values in the examples are masked.<ul class='mb-0'>"
            f"{lines}</ul></div>")


class _Resources(HTMLParser):
    """URLs an HTML page loads by itself (not <a> links, which wait for a click)."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag != "a":
            self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "data", "poster") and v]


def resources(text: str, is_html: bool) -> list[str]:
    """What a page or stylesheet would fetch (inline data: URIs left out)."""
    urls = CSS_URLS.findall(text)
    if is_html:
        parser = _Resources()
        parser.feed(text)
        urls += parser.urls
    return [u.strip() for u in urls if not u.strip().startswith(("data:", "#"))]


def _problem(path: Path, text: str, personal: set[str]) -> str | None:
    urls = resources(text, path.suffix == ".html")
    if remote := sorted({u for u in urls if REMOTE.match(u)}):
        return f"external resources not vendored (add them to expectations/vendor and CDN): {remote}"
    local = {u for u in urls if not REMOTE.match(u)}
    if missing := sorted(u for u in local if not (path.parent / unquote(re.split("[?#]", u)[0])).is_file()):
        return f"links to missing files: {missing}"
    if leaked := sum(v in text for v in personal):
        return f"{leaked} raw personal value(s) left unmasked"  # the values stay unprinted
    return None


def make_offline(out: Path, banner: str, personal: set[str]) -> None:
    """CDN links -> relative links to out/vendor.  A page naming an unknown
    external resource or a missing file, or showing one of the ``personal``
    values, is an error (and the site is removed), not a silent request or leak."""
    shutil.copytree(VENDOR, out / "vendor")
    for path in sorted([*out.rglob("*.html"), *out.rglob("*.css")]):
        if path.relative_to(out).parts[0] == "vendor":
            continue
        up = Path(os.path.relpath(out, path.parent)).as_posix()
        text = path.read_text(encoding="utf-8")
        for url, local in CDN.items():
            text = text.replace(f'"{url}"', f'"{up}/vendor/{local}"')
        text = GE_LOGO.sub(f"{up}/{LOCAL_LOGO}", text)
        # GE 1.24 puts validation pages' favicon link one level too shallow: recompute all.
        text = GE_STATIC.sub(rf"\g<1>{up}/static/", text)
        if path.suffix == ".html" and PAGE_MARK not in text:  # Great Expectations' page
            text = SRI_ATTRS.sub("", text)
            text = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, text, count=1)
        if problem := _problem(path, text, personal):
            shutil.rmtree(out)
            raise RuntimeError(f"{path.relative_to(out)}: {problem}; site removed")
        path.write_text(text, encoding="utf-8")


def _clear(out: Path) -> None:
    """Empties the output folder, but only one this command made."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise SystemExit(f"yibao quality-docs: {out} is not empty and was not made by "
                             "quality-docs; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Data Docs written by `yibao quality-docs`; rebuilt on every run.\n")


def build_docs(input_dir: str, out: str | Path, as_of: dt.datetime, ref,
               sample: int | None = DEFAULT_SAMPLE,
               streams: tuple[str, ...] = schemas.STREAM_NAMES,
               months: list[dt.date] | None = None, config=None) -> tuple[Path, list[StreamDocs]]:
    """Builds the site; returns the path of index.html and what was validated.
    ``months``: the pages' months (default: as the nightly run's, January of
    as_of's year to as_of's month); ``config``: the run's (pipelines.config)."""
    out = Path(out).absolute()
    _clear(out)
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # before GE is imported: nothing goes online
    from great_expectations.core.run_identifier import RunIdentifier

    from pipelines.config import load_config

    from .derived import ge_frame

    config = config or load_config()
    months = months or default_months(as_of)
    context = _context(out)
    run_id = RunIdentifier(run_name=f"as_of-{as_of.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}",
                           run_time=dt.datetime.now(dt.UTC))
    done, personal = [], set()
    work = tempfile.TemporaryDirectory(prefix="yibao-docs-")
    con = connect(os.path.join(work.name, "docs.duckdb"))  # on disk: a large input spills
    try:
        for stream in schemas.STREAM_NAMES:  # every stream: the figures need them all
            dead = load_stream(con, input_dir, stream)
            if stream not in streams:
                continue
            table, total = sampled_latest(con, stream, as_of, sample)
            docs = StreamDocs(stream, total, table.num_rows, dead)
            done.append(docs)
            if docs.latest:
                personal |= validate_stream(context, docs, ge_frame(stream, table), ref, run_id)
        figures = docs_pages.compute(con, RunContext(ref=ref, config=config, as_of=as_of,
                                                     months=months))
    finally:
        con.close()
        work.cleanup()
    context.build_data_docs()
    (out / "index.html").rename(out / docs_pages.GE_INDEX)  # the index is ours
    ge_pages = {p.stem.removeprefix("latest-"): p for p in (out / "validations").rglob("*.html")}
    docs_pages.write_pages(out, figures, ge_pages, _shown(as_of))
    make_offline(out, _banner(as_of, done), personal)
    return out / "index.html", done


def default_as_of(input_dir: str) -> dt.datetime:
    """<input>/as_of.txt when the input has one (generated data does), else now."""
    path = FileSystems.join(input_dir, "as_of.txt")
    if FileSystems.exists(path):
        with FileSystems.open(path) as f:
            return parse_instant(f.read().decode("utf-8"))
    return dt.datetime.now(dt.UTC)


def warehouse_run(uri: str) -> tuple[dt.datetime, str | None]:
    """as_of and --months (None: the run's default) of the latest succeeded
    nightly run in the warehouse at ``uri`` (DuckDB or BigQuery, read through
    warehouse/reader.py), so the pages show the record versions and months
    that run validated."""
    from pipelines.errors import UsageError
    from warehouse.reader import bigquery_failure, open_reader

    try:
        with open_reader(uri) as r:
            found = r.rows("SELECT as_of, options FROM pipeline_runs WHERE pipeline = 'nightly'"
                           " AND status = 'succeeded' AND as_of IS NOT NULL"
                           " ORDER BY started_at DESC LIMIT 1")
    except UsageError:
        raise
    except Exception as e:
        why = bigquery_failure(e) if uri.startswith("bigquery://") else None
        if why is None:
            raise
        raise UsageError(f"--warehouse {uri}: {why}") from None
    if not found:
        raise UsageError(f"--warehouse {uri} holds no succeeded nightly run — run yibao nightly"
                         " first, or give --as-of")
    options = json.loads(found[0]["options"] or "{}")
    return found[0]["as_of"], options.get("months")


def quality_docs_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="yibao quality-docs",
        description="Great Expectations Data Docs (HTML, opens offline) of the latest version of "
                    "each record at as_of, validated with the rule suites of expectations/.")
    p.add_argument("--input", required=True, help="input root: <input>/<stream>/*.avro")
    p.add_argument("--as-of", dest="as_of", default=None,
                   help="cut-off instant, ISO 8601 (naive = Asia/Shanghai); "
                        "default: --warehouse's, else <input>/as_of.txt if present, else now")
    p.add_argument("--warehouse", default=None,
                   help="duckdb:///path/file.duckdb or bigquery://PROJECT/DATASET: as_of is that"
                        " of its latest succeeded nightly run (what that run validated)")
    p.add_argument("--reference", default=None, help="reference CSVs; default <input>/reference")
    p.add_argument("--months", default=None,
                   help="months of the per-region pages, YYYY-MM..YYYY-MM; default: --warehouse's"
                        " run's, else January of as_of's year to as_of's month (as yibao nightly)")
    p.add_argument("--config", default=None, help="the nightly run's YAML config, if it had one")
    p.add_argument("--allow-demo-key", dest="allow_demo_key", action="store_true",
                   help="pseudonymise psn_no with the public demo key (local trials only)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"site folder (default {DEFAULT_OUT}); "
                   "rebuilt from scratch")
    p.add_argument("--sample", type=int, default=DEFAULT_SAMPLE,
                   help=f"validate at most N records per stream in Great Expectations' pages, the"
                        f" same ones every run (default {DEFAULT_SAMPLE:,}; 0 = all: Great"
                        " Expectations checks some 30-60k rows/s); the per-region pages count all")
    args = p.parse_args(argv)
    if args.sample < 0:
        p.error("--sample must be >= 0")
    from pipelines import checks
    from pipelines.config import load_config
    from transforms.privacy import require_key

    require_key(allow_demo=args.allow_demo_key)  # examples and failures pseudonymise psn_no
    input_dir = args.input if "://" in args.input else os.path.abspath(args.input)
    as_of, run_months = (warehouse_run(args.warehouse) if args.warehouse and not args.as_of
                         else (None, None))
    as_of = as_of or (parse_instant(args.as_of) if args.as_of else default_as_of(input_dir))
    config = load_config(args.config)
    months = checks.months(args.months or run_months, as_of,
                           int(config.parameters.get("max_months", 60)))
    ref = reference.load(args.reference or FileSystems.join(input_dir, "reference"))
    index, done = build_docs(input_dir, args.out, as_of, ref, args.sample or None,
                             months=months, config=config)
    print(f"Validated the latest versions at as_of {_shown(as_of)}:")
    for docs in done:
        failed = (f": {docs.failed_expectations} of {docs.expectations} expectations failed"
                  if docs.latest else "")
        print(f"  {docs.note}{failed}")
    if any(d.validated < d.latest for d in done):
        print("  Results of a sampled stream are those of its sample (--sample 0 validates all).")
    print(f"Pages per region and month: {months[0]:%Y-%m}..{months[-1]:%Y-%m}, record pass rates"
          " of every record (not sampled)")
    print(f"Data Docs: {index.as_uri()}")
    return 0
