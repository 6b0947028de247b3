"""Unicode character sets the name and blank checks use (E02, E08).

Shared by the Great Expectations implementations (Python ``str``) and the
SQL compiler (RE2 character classes), so both read the same definition.
"""
from __future__ import annotations

import functools
import sys

#: Characters with the Unicode White_Space property (PropList.txt).  Not
#: ``str.isspace``: that also accepts U+001C..U+001F, which are not White_Space.
WHITE_SPACE = frozenset(
    [*map(chr, range(0x09, 0x0E)), " ", "\x85", "\xa0", "\u1680",
     *map(chr, range(0x2000, 0x200B)), "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
)


def is_blank(value: str) -> bool:
    """Empty after trimming White_Space characters."""
    return all(ch in WHITE_SPACE for ch in value)


def _ranges(codepoints: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in codepoints:
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


def _re2_class(codepoints: list[int]) -> str:
    parts = [f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in _ranges(codepoints)]
    return "[" + "".join(parts) + "]"


def white_space_re2() -> str:
    """RE2 character class of WHITE_SPACE."""
    return _re2_class(sorted(map(ord, WHITE_SPACE)))


@functools.cache
def decimal_digit_re2() -> str:
    """RE2 character class of every character ``str.isdecimal`` accepts (the
    Unicode decimal digits of this Python's Unicode version, ０–９ included).
    Built from Python rather than RE2's ``\\p{Nd}`` so that both sides agree
    whatever Unicode version DuckDB's RE2 was built with."""
    return _re2_class([cp for cp in range(sys.maxunicode + 1) if chr(cp).isdecimal()])
