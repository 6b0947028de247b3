"""``yibao``: the command line others script against (ARCHITECTURE.md).

    yibao generate --out DIR [--seed N] [--persons N] [--months A..B] [--defect-rate R]
    yibao nightly --input DIR --warehouse URI [--as-of T] [--months A..B]
                  [--reference DIR] [--config FILE] [Beam options]
    yibao demo [--out DIR] [--warehouse URI]   generate -> nightly -> scorecard
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

# Nothing at run time may reach the network: GE's analytics stay off.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _nightly(argv: list[str]) -> int:
    from pipelines import nightly

    nightly.run(argv)
    return 0


def _generate(argv: list[str]) -> int:
    from datagen.cli import generate_main

    return generate_main(argv) or 0


def _demo(argv: list[str]) -> int:
    from pipelines.demo import demo_main

    return demo_main(argv) or 0


def _alerts(argv: list[str]) -> int:
    from alerting.cli import alerts_main

    return alerts_main(argv) or 0


def _report(argv: list[str]) -> int:
    from report.cli import report_main

    return report_main(argv) or 0


def _query(argv: list[str]) -> int:
    from report.cli import query_main

    return query_main(argv) or 0


def _quality_docs(argv: list[str]) -> int:
    from expectations.docs import quality_docs_main

    return quality_docs_main(argv) or 0


COMMANDS = {
    "generate": (_generate, "write synthetic Avro streams, reference data and truth.json"),
    "nightly": (_nightly, "run the nightly indicator refresh (Beam batch pipeline)"),
    "alerts": (_alerts, "evaluate data-quality alerts, or send a test alert to a channel"),
    "report": (_report, "self-evaluation report (HTML) of a region and month"),
    "query": (_query, "run SQL read-only against the DuckDB warehouse"),
    "quality-docs": (_quality_docs, "render Great Expectations Data Docs (offline HTML)"),
    "demo": (_demo, "generate demo data, run nightly on DuckDB, print the scorecard"),
}


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
    func, _ = COMMANDS[argv[0]]
    return func(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
