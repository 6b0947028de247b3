"""Personal identity: 18-character resident IDs (GB 11643) and Chinese names.

An ID is region (6) + birth date YYYYMMDD (8) + sequence (3, odd for men)
+ the ISO 7064 MOD 11-2 check character, computed by python-stdnum.
"""
from __future__ import annotations

import random

from stdnum.cn.ric import calc_check_digit

from datagen import codes

_SURNAME_CUM = []
_total = 0
for _w in codes.SURNAME_WEIGHTS:
    _total += _w
    _SURNAME_CUM.append(_total)


def check_char(body17: str) -> str:
    """Check character of 17 digits (stdnum expects the check position present)."""
    return calc_check_digit(body17 + "0")


def resident_id(region6: str, birth_ymd: str, seq: int) -> str:
    body = f"{region6}{birth_ymd}{seq:03d}"
    return body + check_char(body)


def sequence_for(rng: random.Random, male: bool) -> int:
    """A 3-digit order code whose parity is the gender (odd = male)."""
    return rng.randrange(0, 500) * 2 + (1 if male else 0)


def chinese_name(rng: random.Random) -> str:
    if rng.random() < 0.002:
        return rng.choice(codes.DOT_NAMES)
    surname = rng.choices(codes.SURNAMES, cum_weights=_SURNAME_CUM)[0]
    given = rng.choice(codes.GIVEN_CHARS)
    if rng.random() < 0.72:
        given += rng.choice(codes.GIVEN_CHARS)
    return surname + given
