"""Source columns -> the contract's Arrow types, vectorised, with a reason
for every value that cannot be converted.

Every converter takes one source column (Arrow) and returns the converted
column plus a string column of reasons (null where the value converted).
Text is what CSV and XLSX give (and Parquet strings); Parquet's native
types take a direct path where it is exact and otherwise go through their
text form (Arrow's casts to string are exact: a double becomes its
shortest round-trip text, so 12.3 stays "12.3").

What a value may look like (docs/IMPORT.md):

* timestamp: ``YYYY-MM-DD[ T]HH:MM:SS[.fff]`` followed by ``Z`` or an offset
  (``+08:00``, ``+0800``), or without one: local time in Asia/Shanghai.
  Digits below the millisecond must be zeros (the contract holds ms).
* date: ``YYYY-MM-DD``, ``YYYYMMDD``, or ``YYYY-MM-DD 00:00:00[.000]``.
* money: plain decimal text, at most 2 decimals that are not zeros, at
  most 14 integer digits; cast by Arrow's decimal parser (never a float).
* boolean: 1/0, true/false (any case), 是/否, or the mapping's own words.
* int: an integer (``3.0`` too: how pandas writes an integer column with gaps).
* list of strings: ``a;b``, ``a|b``, ``a,b`` (or the mapping's separator),
  or a JSON / Python list ``["a", "b"]``; an empty cell is an empty list.
* empty cell: null for a nullable field, "" for a required string, a
  reject for any other required field.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas

TZ = "Asia/Shanghai"
TRUE_WORDS = ("1", "true", "是")
FALSE_WORDS = ("0", "false", "否")
LIST_SEPARATORS = r"[;|,，；、]"  # codes never contain these

_TS = (r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})"
       r"(?:\.(?P<frac>\d{1,9}))?(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$")
_MONEY = r"^[+-]?(\d{1,14}(\.\d{0,2}0*)?|\.\d{1,2}0*)$"
_INT = r"^[+-]?\d{1,10}(\.0*)?$"


class Result:
    """A converted column and its reasons (null where the value is good)."""

    def __init__(self, values: pa.Array, reasons: pa.Array):
        self.values, self.reasons = values, reasons


def _reason(bad: pa.Array, text: str) -> pa.Array:
    """``text`` where ``bad`` is true, else null."""
    bad = bad.fill_null(False)
    if not pc.any(bad).as_py():  # the common case: no work
        return _none(len(bad))
    return pc.if_else(bad, pa.scalar(text), pa.scalar(None, pa.string()))


def _strict(text: pa.Array, typ: pa.DataType, fmt: str) -> pa.Array:
    """``text`` (shaped like ``fmt``) cast to ``typ``; null where it names
    no real date or time (30 February, 24:00:00, 23:59:60).  Arrow's cast
    checks that but fails the whole array, so only then, the slow way:
    strptime (which rolls 30 February into March) and printing back."""
    try:
        return pc.cast(text, typ)
    except pa.ArrowInvalid:
        parsed = pc.strptime(text, fmt, unit="s", error_is_null=True)
        real = pc.equal(pc.strftime(parsed, fmt), text)
        return pc.if_else(real, parsed, pa.scalar(None, parsed.type)).cast(typ)


def first_reason(*reasons: pa.Array) -> pa.Array:
    """Per row, the first reason that is not null."""
    some = [r for r in reasons if r.null_count < len(r)]
    if not some:
        return reasons[0]
    return pc.coalesce(*some) if len(some) > 1 else some[0]


def _quoted(col: pa.Array, why: str) -> pa.Array:
    """Reason naming the value: ``why: 'value'``."""
    return pc.binary_join_element_wise(pa.scalar(why + ": '"), col, pa.scalar("'"), "")


def _none(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


# --- the bytes of a text column: cheap whole-column checks with numpy --------
# Exports write most columns in one plain shape (``2023-03-01 08:30:00``,
# ``1234.50``); the checks below find that out at memory speed, and a
# column in that shape takes Arrow's strict cast directly.  Any doubt — a
# check or the cast fails — and the column takes the general path, which
# finds each bad value and its reason.  tests/test_import_fast_paths.py
# checks that both paths agree.


def _text_buffers(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets into them, length + 1) of a string array."""
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32)[col.offset: col.offset + len(col) + 1]
    data = col.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64)


def _graphic(b: np.ndarray) -> np.ndarray:
    """Printable ASCII other than space (0x21-0x7e)."""
    return (b - np.uint8(0x21)) < np.uint8(0x7e - 0x21 + 1)


def _only(col: pa.Array, allowed: bytes) -> bool:
    """Every byte of every value is an ASCII digit or one of ``allowed``
    (and no value is null)."""
    if col.null_count:
        return False
    data, offsets = _text_buffers(col)
    data = data[offsets[0]:offsets[-1]]
    ok = (data - np.uint8(ord("0"))) < 10
    for c in allowed:
        ok |= data == c
    return bool(ok.all())


def _lengths(col: pa.Array) -> np.ndarray:
    return np.diff(_text_buffers(col)[1])


def _strip(col: pa.Array) -> pa.Array:
    """Surrounding (Unicode) whitespace removed; the column as is, without
    a Unicode pass, when no value starts or ends with a space or a
    non-ASCII byte (the usual case)."""
    if len(col) and not col.null_count:
        data, offsets = _text_buffers(col)
        lengths = np.diff(offsets)
        if len(data):
            first = data[np.minimum(offsets[:-1], len(data) - 1)]
            last = data[np.maximum(offsets[1:] - 1, 0)]
            if ((lengths == 0) | (_graphic(first) & _graphic(last))).all():
                return col
        elif not lengths.any():
            return col
    return pc.utf8_trim_whitespace(col)


def _empty(col: pa.Array) -> pa.Array:
    return pc.equal(pc.binary_length(col), 0)


# --- text -> contract type -----------------------------------------------------


def _ms_of_naive(naive: pa.Array) -> pa.Array:
    """Naive timestamps (local Asia/Shanghai wall time) -> int64 UTC ms."""
    local = pc.assume_timezone(naive, TZ, ambiguous="earliest", nonexistent="earliest")
    return local.cast(pa.int64())


def _plain_timestamp(col: pa.Array) -> pa.Array | None:
    """int64 UTC ms if every value is ``YYYY-MM-DD[ T]HH:MM:SS[.f{1,3}]``,
    all naive or all with a good offset; else None.  Arrow's ISO 8601 cast
    checks the calendar and the clock; it also takes ``HH`` and ``HH:MM``
    (ruled out by the colons at 13 and 16) and offsets beyond 18 hours
    (ruled out by a match), and refuses digits beyond the unit."""
    if not len(col) or col.null_count:
        return None
    data, offsets = _text_buffers(col)
    lengths = np.diff(offsets)
    if lengths.min() < 19 or lengths.max() > 29:
        return None
    start = offsets[:-1]
    if not ((data[start + 13] == ord(":")) & (data[start + 16] == ord(":"))).all():
        return None
    if lengths.max() <= 23:  # no room for an offset: naive, if anything
        try:
            return _ms_of_naive(pc.cast(col, pa.timestamp("ms")))
        except pa.ArrowInvalid:
            pass
    try:
        utc = pc.cast(col, pa.timestamp("ms", tz="UTC"))
    except pa.ArrowInvalid:
        return None
    if pc.any(pc.match_substring_regex(col, r"[+-](19|[2-9]\d)(:?\d\d)?$")).as_py():
        return None
    return utc.cast(pa.int64())


def text_timestamp(col: pa.Array, fmt: dict) -> Result:
    if "format" in fmt:  # the mapping's strptime format (with %z: an offset in the text)
        parsed = pc.strptime(col, fmt["format"], unit="ms", error_is_null=True)
        if parsed.type.tz is None:
            ms = _ms_of_naive(parsed)
        else:
            ms = parsed.cast(pa.int64())
        bad = pc.is_null(ms)
        why = f"not a date-time in the format {fmt['format']!r}"
        return Result(ms.cast(schemas.TIMESTAMP), _reason(bad, why))
    plain = _plain_timestamp(col)
    if plain is not None:
        return Result(plain.cast(schemas.TIMESTAMP), _none(len(col)))
    parts = pc.extract_regex(col, _TS)
    ok = parts.is_valid()
    date, time = pc.struct_field(parts, "date"), pc.struct_field(parts, "time")
    frac = pc.fill_null(pc.struct_field(parts, "frac"), "")
    tz = pc.fill_null(pc.struct_field(parts, "tz"), "")
    base_text = pc.binary_join_element_wise(date, time, " ")
    base = _strict(pc.fill_null(base_text, "1970-01-01 00:00:00"), pa.timestamp("s"),
                   "%Y-%m-%d %H:%M:%S")
    real = pc.and_(ok, base.is_valid())
    naive_ms = pc.multiply(base.cast(pa.int64()), 1000)
    if pc.any(pc.not_equal(frac, "")).as_py():
        frac9 = pc.utf8_rpad(frac, 9, "0")
        naive_ms = pc.add(naive_ms, pc.cast(pc.utf8_slice_codeunits(frac9, 0, 3), pa.int64()))
        sub_ms = pc.not_equal(pc.utf8_slice_codeunits(frac9, 3, 9), "000000")
    else:
        sub_ms = pa.repeat(False, len(col))
    naive = pc.equal(tz, "")
    utc_ms = _ms_of_naive(naive_ms.cast(pa.timestamp("ms")))
    bad_offset = pa.repeat(False, len(col))
    if not pc.all(naive).as_py():  # explicit offsets: Z, +HH, +HHMM, +HH:MM
        digits = pc.replace_substring(pc.replace_substring(tz, ":", ""), "Z", "+0000")
        digits = pc.utf8_rpad(pc.if_else(naive, "+0000", digits), 5, "0")
        sign = pc.if_else(pc.starts_with(digits, "-"), -1, 1)
        hours = pc.cast(pc.utf8_slice_codeunits(digits, 1, 3), pa.int64())
        minutes = pc.cast(pc.utf8_slice_codeunits(digits, 3, 5), pa.int64())
        bad_offset = pc.or_(pc.greater(hours, 18), pc.greater(minutes, 59))
        offset_ms = pc.multiply(pc.multiply(sign, pc.add(pc.multiply(hours, 60), minutes)), 60_000)
        utc_ms = pc.if_else(naive, utc_ms, pc.subtract(naive_ms, offset_ms))
    good = pc.and_(real, pc.invert(pc.or_(sub_ms, bad_offset)))
    reasons = first_reason(
        _reason(pc.invert(ok), "not a date-time: expected YYYY-MM-DD HH:MM:SS[.fff] "
                "(Asia/Shanghai) or ISO 8601 with an offset"),
        _reason(pc.invert(real), "no such date or time of day"),
        _reason(sub_ms, "finer than a millisecond (the contract holds milliseconds)"),
        _reason(bad_offset, "bad UTC offset"),
    )
    values = pc.if_else(good, utc_ms, pa.scalar(None, pa.int64()))
    return Result(values.cast(schemas.TIMESTAMP), reasons)


def _plain_date(col: pa.Array) -> pa.Array | None:
    """date32 if every value is ``YYYY-MM-DD`` or every value ``YYYYMMDD``
    (Arrow's cast takes exactly ``YYYY-MM-DD`` and checks the calendar); else None."""
    if not len(col) or col.null_count:
        return None
    data, offsets = _text_buffers(col)
    lengths = np.diff(offsets)
    if (lengths == 8).all():
        digits = data[offsets[0]:offsets[-1]].reshape(len(col), 8)
        if not ((digits - np.uint8(ord("0"))) < 10).all():
            return None
        iso = np.full((len(col), 10), ord("-"), dtype=np.uint8)
        iso[:, :4], iso[:, 5:7], iso[:, 8:] = digits[:, :4], digits[:, 4:6], digits[:, 6:]
        col = pa.Array.from_buffers(pa.string(), len(col), [
            None, pa.py_buffer(np.arange(0, 10 * len(col) + 1, 10, dtype=np.int32)),
            pa.py_buffer(iso)])
    elif not (lengths == 10).all():
        return None
    try:
        return pc.cast(col, pa.date32())
    except pa.ArrowInvalid:
        return None


def text_date(col: pa.Array, fmt: dict) -> Result:
    if "format" in fmt:
        parsed = pc.strptime(col, fmt["format"], unit="s", error_is_null=True)
        why = f"not a date in the format {fmt['format']!r}"
        return Result(parsed.cast(pa.date32()), _reason(pc.is_null(parsed), why))
    plain = _plain_date(col)
    if plain is not None:
        return Result(plain, _none(len(col)))
    iso = col
    if not pc.all(pc.match_substring_regex(col, r"^\d{4}-\d{2}-\d{2}$")).as_py():
        iso = pc.replace_substring_regex(col, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
        iso = pc.replace_substring_regex(iso, r"^(\d{4}-\d{2}-\d{2})[T ]00:00(:00(\.0+)?)?$",
                                         r"\1")
    shaped = pc.match_substring_regex(iso, r"^\d{4}-\d{2}-\d{2}$")
    values = _strict(pc.if_else(shaped, iso, "1970-01-01"), pa.date32(), "%Y-%m-%d")
    real = pc.and_(shaped, values.is_valid())
    reasons = first_reason(
        _reason(pc.invert(shaped), "not a date: expected YYYY-MM-DD or YYYYMMDD"),
        _reason(pc.invert(real), "no such date"))
    return Result(pc.if_else(real, values, pa.scalar(None, pa.date32())), reasons)


def _plain_money(col: pa.Array, typ: pa.DataType) -> pa.Array | None:
    """The decimals if every value is plain decimal text of at most 14
    characters (so at most 14 integer digits, leading zeros included) that
    Arrow's exact cast takes (it refuses a third decimal that is not 0); else None."""
    if not len(col):
        return None
    lengths = _lengths(col)
    if lengths.min() < 1 or lengths.max() > 14 or not _only(col, b".+-"):
        return None
    try:
        return pc.cast(col, typ)
    except pa.ArrowInvalid:
        return None


def text_money(col: pa.Array, typ: pa.DataType) -> Result:
    plain = _plain_money(col, typ)
    if plain is not None:
        return Result(plain, _none(len(col)))
    good = pc.match_substring_regex(col, _MONEY)
    if pc.all(good).as_py():  # Arrow's decimal parser is exact; "1.500" -> 1.50
        return Result(pc.cast(col, typ), _none(len(col)))
    values = pc.cast(pc.if_else(good, col, "0"), typ)
    values = pc.if_else(good, values, pa.scalar(None, typ))
    frac = pc.match_substring_regex(col, r"^[+-]?\d*\.\d{3,}$")
    reasons = first_reason(
        _reason(pc.and_(pc.invert(good), pc.match_substring(col, ",")),
                "money with a comma: write plain decimal text such as 1234.56"),
        _reason(pc.and_(pc.invert(good), pc.match_substring(col, "，")),
                "money with a comma: write plain decimal text such as 1234.56"),
        _reason(pc.and_(pc.invert(good), frac), "money with more than 2 decimals"),
        _reason(pc.and_(pc.invert(good), pc.match_substring_regex(col, r"^[+-]?\d{15,}")),
                "money too large for decimal(16,2)"),
        _reason(pc.invert(good), "not a decimal amount"),
    )
    return Result(values, reasons)


def text_int(col: pa.Array, typ: pa.DataType) -> Result:
    shaped = pc.match_substring_regex(col, _INT)
    digits = pc.replace_substring_regex(pc.if_else(shaped, col, "0"), r"\.0*$", "")
    wide = pc.cast(digits, pa.int64())
    info = {pa.int32(): 2**31, pa.int64(): 2**63}[typ]
    fits = pc.and_(pc.greater_equal(wide, -info), pc.less(wide, info))
    good = pc.and_(shaped, fits)
    reasons = first_reason(_reason(pc.invert(shaped), "not an integer"),
                           _reason(pc.invert(good), f"integer out of range for {typ}"))
    values = pc.if_else(good, wide, pa.scalar(None, pa.int64())).cast(typ)
    return Result(values, reasons)


def text_bool(col: pa.Array, fmt: dict) -> Result:
    low = pc.utf8_lower(col)
    true_words = [str(w).lower() for w in fmt.get("true_values", TRUE_WORDS)]
    false_words = [str(w).lower() for w in fmt.get("false_values", FALSE_WORDS)]
    is_true = pc.is_in(low, pa.array(true_words))
    is_false = pc.is_in(low, pa.array(false_words))
    good = pc.or_(is_true, is_false)
    why = f"not a boolean: expected one of {'/'.join(true_words)} or {'/'.join(false_words)}"
    values = pc.if_else(good, is_true, pa.scalar(None, pa.bool_()))
    return Result(values, _reason(pc.invert(good), why))


def text_list(col: pa.Array, fmt: dict) -> Result:
    """Separated text (or a JSON / Python list) -> list<string>."""
    col = _strip(col)
    bracketed = pc.match_substring_regex(col, r"^\[.*\]$")
    inner = _strip(pc.if_else(bracketed, pc.utf8_slice_codeunits(col, 1, -1), col))
    sep = fmt.get("separator")
    if sep is None:
        items = pc.split_pattern_regex(inner, LIST_SEPARATORS)
    else:  # a bracketed list keeps its JSON commas
        items = pc.split_pattern(pc.if_else(bracketed, pc.replace_substring(inner, ",", sep),
                                            inner), sep)
    flat = pc.utf8_trim(pc.utf8_trim_whitespace(pc.list_flatten(items)), "\"'")
    offsets = items.offsets
    values = pa.ListArray.from_arrays(pc.subtract(offsets, offsets[0]), flat)
    # an empty cell (or []) is an empty list, not [""]
    values = pc.if_else(_empty(inner), pa.scalar(None, values.type), values)
    return Result(values.fill_null(pa.scalar([], values.type)), _none(len(col)))


def text_string(col: pa.Array) -> Result:
    return Result(col, _none(len(col)))


_FILLER = {schemas.TIMESTAMP: "1970-01-01 00:00:00", pa.date32(): "1970-01-01"}


def convert_text(col: pa.Array, field: pa.Field, fmt: dict) -> Result:
    """One text column (no nulls: an empty cell is "") -> the field's type.
    The converters below take the text stripped of surrounding whitespace
    (all but a string field's, which is kept as is)."""
    typ = field.type
    if pa.types.is_list(typ):
        return text_list(col, fmt)  # an empty cell is an empty list
    if typ == pa.string():
        if not field.nullable:
            return text_string(col)  # an empty cell is ""
    else:
        col = _strip(col)
    lengths = _lengths(col)
    empty = None if lengths.all() else pa.array(lengths == 0)
    if empty is not None and typ != pa.string():
        # an empty cell's value is replaced below (null, or a reject); filled
        # first with a value that converts, the column can stay on a fast path
        col = pc.if_else(empty, _FILLER.get(typ, "0"), col)
    if typ == pa.string():
        res = text_string(col)
    elif typ == schemas.TIMESTAMP:
        res = text_timestamp(col, fmt)
    elif typ == pa.date32():
        res = text_date(col, fmt)
    elif pa.types.is_decimal(typ):
        res = text_money(col, typ)
    elif pa.types.is_integer(typ):
        res = text_int(col, typ)
    elif typ == pa.bool_():
        res = text_bool(col, fmt)
    else:
        raise TypeError(f"no text conversion to {typ}")
    if empty is None:
        return res
    if field.nullable:  # an empty cell is null
        return Result(pc.if_else(empty, pa.scalar(None, typ), res.values),
                      pc.if_else(empty, pa.scalar(None, pa.string()), res.reasons))
    return Result(res.values, first_reason(
        _reason(empty, f"empty, but {field.name} is required"), res.reasons))


# --- native (Parquet) -> contract type -------------------------------------


def convert_native(col: pa.Array, field: pa.Field, fmt: dict) -> Result:
    """A typed column (Parquet) -> the field's type: directly where that is
    exact, else through its text form."""
    typ, src = field.type, col.type
    n = len(col)
    if pa.types.is_dictionary(src):
        col, src = col.cast(src.value_type), src.value_type
    if pa.types.is_large_string(src) or pa.types.is_string_view(src):
        col, src = col.cast(pa.string()), pa.string()
    if src == pa.null():
        col, src = pa.nulls(n, pa.string()), pa.string()
    nulls = col.is_null()
    if pa.types.is_list(typ) and (pa.types.is_list(src) or pa.types.is_large_list(src)):
        values = col.cast(pa.list_(pa.string()))
        return Result(values.fill_null(pa.scalar([], values.type)), _none(n))
    if src == typ and typ != pa.string():
        values = col
    elif pa.types.is_timestamp(typ) and pa.types.is_timestamp(src):
        ints = col.cast(pa.int64())
        per_ms = {"s": None, "ms": 1, "us": 1000, "ns": 1_000_000}[src.unit]
        if per_ms is None:
            ms = pc.multiply(ints, 1000)
            sub = pa.repeat(False, n)
        else:
            ms = pc.divide(ints, per_ms) if per_ms > 1 else ints
            sub = pc.not_equal(pc.subtract(ints, pc.multiply(ms, per_ms)), 0)
        if src.tz is None:  # naive: Asia/Shanghai wall time
            ms = _ms_of_naive(ms.cast(pa.timestamp("ms")))
        values = pc.if_else(sub, pa.scalar(None, pa.int64()), ms).cast(typ)
        reasons = _reason(sub, "finer than a millisecond (the contract holds milliseconds)")
        return _nullability(values, reasons, nulls, field)
    elif typ == pa.date32() and (src == pa.date64()):
        values = col.cast(pa.date32())
    elif pa.types.is_decimal(typ) and pa.types.is_decimal(src) and src.scale <= typ.scale \
            and src.precision - src.scale <= typ.precision - typ.scale:
        values = col.cast(typ)
    elif pa.types.is_integer(typ) and pa.types.is_integer(src):
        res = text_int(col.cast(pa.string()).fill_null(""), typ)
        return _nullability(res.values, res.reasons, nulls, field)
    else:  # through text: exact for every Arrow type that casts to string
        try:
            text = col.cast(pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as err:
            raise ValueError(f"column of type {src} cannot be read as {typ}: {err}") from err
        res = convert_text(text.fill_null(""), field, fmt)
        return res
    return _nullability(values, _none(n), nulls, field)


def _nullability(values, reasons, nulls, field: pa.Field) -> Result:
    if field.nullable or not pc.any(nulls).as_py():
        return Result(values, reasons)
    if field.type == pa.string():
        return Result(values.fill_null(""), reasons)
    return Result(values, first_reason(
        _reason(nulls, f"empty, but {field.name} is required"), reasons))
