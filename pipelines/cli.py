"""``yibao``: the command line others script against (ARCHITECTURE.md).

    yibao generate --out DIR [--seed N] [--persons N] [--months A..B] [--defect-rate R]
    yibao nightly --input DIR --warehouse URI [--as-of T] [--months A..B]
                  [--reference DIR] [--config FILE] [Beam options]
    yibao demo [--out DIR] [--warehouse URI]   generate -> nightly -> scorecard
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

# Nothing at run time may reach the network: GE's analytics stay off.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


#: command -> ("module:function" taking argv, help). The function returns an exit
#: code, or something else (a pipeline's run_id) meaning success.
#: Imported only when run: `yibao report` need not load Beam or GE.
COMMANDS = {
    "generate": ("datagen.cli:generate_main",
                 "write synthetic Avro streams, reference data and truth.json"),
    "nightly": ("pipelines.nightly:run", "run the nightly indicator refresh (Beam batch pipeline)"),
    "stream": ("pipelines.stream:run", "run the streaming pipeline (Pub/Sub or a landing dir)"),
    "report": ("report.cli:report_main", "self-evaluation report of a region and month (HTML, XLSX, CSV or PDF)"),
    "query": ("report.cli:query_main", "run SQL read-only against the warehouse (DuckDB sandbox or BigQuery)"),
    "evidence": ("report.evidence:evidence_main",
                 "manual evidence: write the template, load the filled-in file"),
    "alerts": ("alerting.cli:alerts_main",
               "evaluate data-quality alerts, or send a test alert to a channel"),
    "quality-docs": ("expectations.docs:quality_docs_main",
                     "render Great Expectations Data Docs (offline HTML)"),
    "demo": ("pipelines.demo:demo_main", "generate demo data, run nightly on DuckDB, print the scorecard"),
    "import": ("importer.cli:import_main", "convert CSV / Excel / Parquet exports into contract Avro"),
}


def usage() -> str:
    """``yibao --help``: every command with its one-line description."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return ("usage: yibao COMMAND [options]   (yibao COMMAND --help for its options)\n\n"
            "Medical-insurance service evaluation indicators: Beam pipelines, warehouse, report.\n\n"
            "commands:\n" + "\n".join(lines) + "\n\n"
            "  --debug  (any command) show the traceback of a failure; "
            "YIBAO_LOG_LEVEL=DEBUG|INFO|WARNING sets the log level (default WARNING)")


def _run(command: str, argv: list[str], debug: bool) -> int:
    """Runs a command; a :class:`UsageError` (and any other failure) ends in
    one line on stderr, the traceback only with ``--debug``."""
    from pipelines.errors import UsageError

    module, _, func = COMMANDS[command][0].partition(":")
    try:
        result = getattr(importlib.import_module(module), func)(argv)
    except UsageError as e:
        if debug:
            logging.getLogger("yibao").exception("usage error")
        print(f"yibao {command}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"yibao {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the operator, traceback on demand
        if debug:
            raise
        print(f"yibao {command}: failed: {type(e).__name__}: {e} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    level = "DEBUG" if debug else os.environ.get("YIBAO_LOG_LEVEL", "WARNING").upper()
    debug = debug or level == "DEBUG"
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"yibao: unknown command {argv[0]!r} (yibao --help lists them)", file=sys.stderr)
            return 2
        print(usage())
        return 0 if argv else 2
    return _run(argv[0], argv[1:], debug)


if __name__ == "__main__":
    sys.exit(main())
