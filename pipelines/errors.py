"""Mistakes an operator can fix: one line, exit status 2, no traceback.

Raise :class:`UsageError` for anything the person running the command got
wrong (a missing input, a malformed option, bad reference data, an unknown
region).  ``yibao`` prints ``yibao <command>: <message>`` on stderr and exits
2; ``--debug`` or ``YIBAO_LOG_LEVEL=DEBUG`` adds the traceback.
"""
from __future__ import annotations


class UsageError(ValueError):
    """A mistake in the command, its options or its input files (a ValueError:
    code that already catches bad values keeps working)."""

    exit_code = 2
