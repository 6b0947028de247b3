"""Resident identity numbers (居民身份证号码, GB 11643) as rule E01 reads them.

Only the structure is checked: 17 ASCII digits and a check character, a
province prefix, a real birth date, and the ISO 7064 MOD 11-2 check
character (``stdnum.cn.ric.calc_check_digit``).  The county part is
deliberately not checked — county codes change over time and real IDs
carry retired ones — so ``stdnum.cn.ric.is_valid`` (which checks them) is
not used.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection

from stdnum.cn.ric import calc_check_digit

# ASCII only: Python's \d and int() would accept other Unicode digits.
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)


def birth_date(certno: object, as_of: dt.date | None, province_prefixes: Collection[str],
               earliest: dt.date = EARLIEST_BIRTH_DATE) -> dt.date | None:
    """The birth date encoded in a valid ID, or None when ``certno`` is not a
    valid ID on the business date ``as_of`` (a birth date after ``as_of`` or
    before ``earliest`` makes it invalid; no ``as_of`` makes it unverifiable)."""
    if not isinstance(certno, str) or as_of is None or not _SHAPE.fullmatch(certno):
        return None
    if certno[:2] not in province_prefixes:
        return None
    try:
        born = dt.date(int(certno[6:10]), int(certno[10:12]), int(certno[12:14]))
    except ValueError:
        return None
    if not earliest <= born <= as_of:
        return None
    if calc_check_digit(certno) != certno[17]:  # computed from the first 17 characters
        return None
    return born


def gender(certno: str) -> str:
    """GB/T 2261.1 gender code of a valid ID: odd 17th digit "1" male, even "2" female."""
    return "1" if int(certno[16]) % 2 else "2"
