"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): hands the
launcher's arguments to the nightly pipeline.

The launcher passes every template parameter as ``--name=value``, so a
boolean parameter arrives as ``--no_alerts=true``; NightlyOptions' flags take
no value (``--no_alerts``), hence the one rewrite below.
"""
from __future__ import annotations

import argparse
import logging
import sys


def _flags() -> set[str]:
    """NightlyOptions' value-less flags (store_true), as --name."""
    from pipelines.options import NightlyOptions

    parser = argparse.ArgumentParser()
    NightlyOptions._add_argparse_args(parser)
    return {s for a in parser._actions if isinstance(a, argparse._StoreTrueAction)
            for s in a.option_strings}


def flex_argv(argv: list[str]) -> list[str]:
    """``--flag=true`` -> ``--flag``; ``--flag=false`` -> nothing; the rest as is."""
    flags, out = _flags(), []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if eq and name in flags:
            if value.strip().lower() not in ("true", "false"):
                raise SystemExit(f"{name} takes true or false, not {value!r}")
            out += [name] if value.strip().lower() == "true" else []
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> str:
    from pipelines import nightly

    return nightly.run(flex_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
