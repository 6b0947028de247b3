"""``yibao generate`` / ``python -m datagen``: write a synthetic landing
directory with its truth.json.

    generate --out DIR [--seed N] [--persons N] [--months 2022-01..2023-12]
             [--defect-rate R]
"""
from __future__ import annotations

import argparse

from datagen.generate import DEFAULT_MONTHS, DEFAULT_PERSONS, DEFAULT_SEED, generate


def parser(prog: str = "yibao generate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Generate synthetic 医保 streams (Avro), reference CSVs, "
        "as_of.txt and truth.json (the defects and delivery faults a pipeline must find).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"random seed; a seed reproduces the files exactly (default {DEFAULT_SEED})")
    p.add_argument("--persons", type=int, default=DEFAULT_PERSONS,
                   help=f"residents to simulate (default {DEFAULT_PERSONS:,}: about 1 million "
                   "records over two years)")
    p.add_argument("--months", default=DEFAULT_MONTHS,
                   help=f"YYYY-MM..YYYY-MM, calendar months covered (default {DEFAULT_MONTHS})")
    p.add_argument("--defect-rate", type=float, default=1.0,
                   help="multiplier of every injected defect and delivery fault; 0 gives a "
                   "clean data set (default 1.0)")
    return p


def generate_main(argv: list[str] | None = None, prog: str = "yibao generate") -> int:
    args = parser(prog).parse_args(argv)
    try:
        generate(args.out, seed=args.seed, persons=args.persons, months=args.months,
                 defect_rate=args.defect_rate)
    except ValueError as exc:
        parser(prog).error(str(exc))
    return 0
