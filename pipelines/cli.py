"""``yibao``: the command line others script against (ARCHITECTURE.md).

    yibao generate --out DIR [--seed N] [--persons N] [--months A..B] [--defect-rate R]
    yibao nightly --input DIR --warehouse URI [--as-of T] [--months A..B]
                  [--reference DIR] [--config FILE] [Beam options]
    yibao demo [--out DIR] [--warehouse URI]   generate -> nightly -> scorecard
"""
from __future__ import annotations

import argparse
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
    "report": ("report.cli:report_main", "self-evaluation report (HTML) of a region and month"),
    "query": ("report.cli:query_main", "run SQL read-only against the DuckDB warehouse"),
    "alerts": ("alerting.cli:alerts_main",
               "evaluate data-quality alerts, or send a test alert to a channel"),
    "quality-docs": ("expectations.docs:quality_docs_main",
                     "render Great Expectations Data Docs (offline HTML)"),
    "demo": ("pipelines.demo:demo_main", "generate demo data, run nightly on DuckDB, print the scorecard"),
}


def _run(command: str, argv: list[str]) -> int:
    module, _, func = COMMANDS[command][0].partition(":")
    result = getattr(importlib.import_module(module), func)(argv)
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("YIBAO_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = argparse.ArgumentParser(prog="yibao", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("command", choices=sorted(COMMANDS))
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}")
        parser.print_help()
        return 0 if argv else 2
    return _run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
