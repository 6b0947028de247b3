"""The fast path: the suites' expectation configurations compiled to DuckDB SQL.

Each expectation type the suites use has a translator here that turns its
kwargs (suite parameters already bound) into a SQL boolean meaning "this row
FAILS this expectation", with Great Expectations' semantics on the pandas
engine, nulls included: column-map expectations skip nulls; column-pair
A > B skips rows where either value is missing; the custom expectations
(``expectations/custom``) see every row.  A rule fails when any of its
expectations fails.  A type or kwarg without a translator raises, so the
compiled SQL never silently drifts from the suite; tests/test_quality_parity.py
proves rule by rule that it flags exactly the rows GE flags.

``verdict_sql`` returns the relation's columns plus one BOOLEAN per rule.
Translators get a ``Context``: sub-expressions several rules share (the
resident ID's birth date, for E01/E03/E04) become columns computed once per
row, and cross-record rules (E09) query the whole evaluated set, by name.
"""
from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

from .catalogue import rules, suite
from .derived import DERIVED, with_derived_sql
from .parameters import suite_parameters
from .text import decimal_digit_re2, white_space_re2

# -- SQL fragments ------------------------------------------------------------


def _col(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def _in(expr: str, values) -> str:
    """``expr IN (...)``; an empty set contains nothing."""
    values = list(values)
    return f"{expr} IN ({', '.join(map(_lit, values))})" if values else "FALSE"


def _fails_unless(condition: str) -> str:
    """A row fails unless ``condition`` is TRUE (NULL counts as not met)."""
    return f"NOT coalesce({condition}, FALSE)"


def _re2(pattern: str) -> str:
    """A Python regular expression as an RE2 one with the same meaning.

    Only a common subset is accepted: Python's \\d \\w \\s \\b are Unicode-aware
    and its ``$`` also matches before a final newline, unlike RE2, so those
    are refused (write [0-9] and \\Z); \\Z becomes RE2's \\z."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1]
            if nxt == "Z":
                out.append("\\z")
            elif nxt == "A" or not nxt.isalnum():
                out.append(ch + nxt)
            else:
                raise ValueError(f"regex {pattern!r}: escape \\{nxt} behaves differently in RE2")
            i += 2
            continue
        group_flag = pattern.startswith("(?", i) and not pattern.startswith("(?:", i)
        if ch == "$" or group_flag or pattern.startswith("{,", i):
            raise ValueError(f"regex {pattern!r}: {pattern[i:i + 3]!r} is not in the RE2-compatible subset")
        out.append(ch)
        i += 1
    return "".join(out)


def _regex_search(expr: str, pattern: str) -> str:
    return f"regexp_matches({expr}, {_lit(_re2(pattern))})"


class Context:
    """What translators share within one verdict query."""

    def __init__(self, relation: str):
        self.relation = relation  # the evaluated set (contract + derived columns)
        self.shared: dict[str, str] = {}  # SQL -> column name

    def share(self, sql: str) -> str:
        """A column holding ``sql``, computed once per row before the rules; it
        may use the shared columns created before it."""
        return _col(self.shared.setdefault(sql, f"_shared{len(self.shared)}"))


# -- built-in expectations ------------------------------------------------------


def _not_null(ctx, column):
    return f"{_col(column)} IS NULL"


def _in_set(ctx, column, value_set):
    return f"{_col(column)} IS NOT NULL AND NOT ({_in(_col(column), value_set)})"


def _match_regex(ctx, column, regex):
    return f"{_col(column)} IS NOT NULL AND NOT {_regex_search(_col(column), regex)}"


def _between(expr: str, min_value, max_value) -> str:
    parts = [f"{expr} >= {_lit(min_value)}"] if min_value is not None else []
    parts += [f"{expr} <= {_lit(max_value)}"] if max_value is not None else []
    return " AND ".join(parts) or "TRUE"


def _lengths_between(ctx, column, min_value=None, max_value=None):
    # length() counts code points, as Python's len does
    return f"{_col(column)} IS NOT NULL AND NOT ({_between(f'length({_col(column)})', min_value, max_value)})"


def _values_between(ctx, column, min_value=None, max_value=None):
    return f"{_col(column)} IS NOT NULL AND NOT ({_between(_col(column), min_value, max_value)})"


def _a_greater_than_b(ctx, column_A, column_B, ignore_row_if, or_equal=False):
    if ignore_row_if != "either_value_is_missing":
        raise ValueError("expect_column_pair_values_a_to_be_greater_than_b is compiled only with "
                         "ignore_row_if='either_value_is_missing'")
    a, b = _col(column_A), _col(column_B)
    return f"{a} IS NOT NULL AND {b} IS NOT NULL AND NOT ({a} {'>=' if or_equal else '>'} {b})"


# -- custom expectations (expectations/custom) -----------------------------------


def _resident_id_birth_date(ctx, certno: str, as_of: str, province_prefixes, earliest: str) -> str:
    """The birth date of a valid resident ID, else NULL (expectations.resident_id)."""
    # ISO 7064 MOD 11-2 over the 17 digits, taken arithmetically from one BIGINT (faster than 17 substr)
    number = ctx.share(f"try_cast(left({certno}, 17) AS BIGINT)")
    total = " + ".join(f"{pow(2, 17 - i, 11)} * ({number} // {10 ** (16 - i)} % 10)" for i in range(17))
    real_date = ctx.share(
        f"CASE WHEN regexp_full_match({certno}, '[0-9]{{17}}[0-9X]') "
        f"AND {_in(f'left({certno}, 2)', province_prefixes)} "
        f"AND substr('10X98765432', ({total}) % 11 + 1, 1) = right({certno}, 1) "
        f"THEN CAST(try_strptime(substr({certno}, 7, 8), '%Y%m%d') AS DATE) END")
    return ctx.share(f"CASE WHEN {real_date} BETWEEN DATE {_lit(earliest)} AND {as_of} THEN {real_date} END")


def _id_columns(ctx, column_list, cert_type, province_prefixes, earliest_birth_date):
    cert_type_col, certno, as_of = map(_col, column_list[:3])
    born = _resident_id_birth_date(ctx, certno, as_of, province_prefixes, earliest_birth_date)
    return f"{cert_type_col} = {_lit(cert_type)}", certno, born


def _resident_id(ctx, column_list, cert_type, province_prefixes, earliest_birth_date):
    is_type, _, born = _id_columns(ctx, column_list, cert_type, province_prefixes, earliest_birth_date)
    return f"coalesce({is_type}, FALSE) AND {born} IS NULL"


def _gender_matches_id(ctx, column_list, cert_type, province_prefixes, earliest_birth_date):
    is_type, certno, born = _id_columns(ctx, column_list, cert_type, province_prefixes, earliest_birth_date)
    gend = _col(column_list[3])
    expected = f"CASE WHEN try_cast(substr({certno}, 17, 1) AS INTEGER) % 2 = 1 THEN '1' ELSE '2' END"
    return (f"coalesce({is_type}, FALSE) AND {born} IS NOT NULL "
            f"AND {_fails_unless(f'{gend} = {expected}')}")


def _birth_date_matches_id(ctx, column_list, cert_type, province_prefixes, earliest_birth_date):
    is_type, _, born = _id_columns(ctx, column_list, cert_type, province_prefixes, earliest_birth_date)
    brdy = _col(column_list[3])
    return f"coalesce({is_type}, FALSE) AND {born} IS NOT NULL AND {_fails_unless(f'{brdy} = {born}')}"


def _person_name(ctx, column, min_length, max_length):
    c, ws = _col(column), white_space_re2()
    edge = "\\A" + ws + "|" + ws + "\\z"  # leading or trailing White_Space
    return (f"{c} IS NOT NULL AND (NOT ({_between(f'length({c})', min_length, max_length)}) "
            f"OR regexp_matches({c}, {_lit(decimal_digit_re2())}) "
            f"OR regexp_matches({c}, {_lit(edge)}))")


def _filled_when(ctx, column_A, value_set, column_B):
    b = _col(column_B)
    blank = f"regexp_full_match({b}, {_lit(white_space_re2() + '*')})"
    return f"coalesce({_in(_col(column_A), value_set)}, FALSE) AND ({b} IS NULL OR {blank})"


def _in_set_when(ctx, column_A, value_set_A, column_B, value_set_B):
    return (f"coalesce({_in(_col(column_A), value_set_A)}, FALSE) "
            f"AND {_fails_unless(_in(_col(column_B), value_set_B))}")


def _regex_when_category(ctx, column_A, category_length, categories, column_B, regex):
    return (f"coalesce({_in(f'left({_col(column_A)}, {int(category_length)})', categories)}, FALSE) "
            f"AND {_fails_unless(_regex_search(_col(column_B), regex))}")


def _present_iff(ctx, column_A, value_set, column_B):
    return f"coalesce({_in(_col(column_A), value_set)}, FALSE) <> ({_col(column_B)} IS NOT NULL)"


def _concurrent_enrolment(ctx, column_list, insutypes, active_status):
    """Over the whole evaluated set: a semi-join on the certnos holding every
    type (cheaper than a window, which would sort every column)."""
    certno, insutype, status = map(_col, column_list)
    holders = " INTERSECT ".join(
        f"SELECT {certno} FROM {ctx.relation} WHERE {certno} IS NOT NULL "
        f"AND {insutype} = {_lit(t)} AND {status} = {_lit(active_status)}" for t in insutypes)
    return (f"coalesce({status} = {_lit(active_status)} AND {_in(insutype, insutypes)}, FALSE) "
            f"AND {certno} IN ({holders})")


def _signs(ctx, column_list, normal_flag, reversal_flag):
    flag, *money = map(_col, column_list)
    nonneg = " AND ".join(f"{m} >= 0" for m in money)
    nonpos = " AND ".join(f"{m} <= 0" for m in money)
    return (f"CASE WHEN {flag} = {_lit(normal_flag)} THEN {_fails_unless(nonneg)} "
            f"WHEN {flag} = {_lit(reversal_flag)} THEN {_fails_unless(nonpos)} ELSE FALSE END")


def _balance(ctx, column_list, tolerance):
    *parts, total = map(_col, column_list)
    return _fails_unless(f"abs(({' + '.join(parts)}) - {total}) <= {Decimal(str(tolerance))}")


def _not_exceed_total(ctx, column_list, reversal_flag):
    flag, amount, total = map(_col, column_list)
    return _fails_unless(f"CASE WHEN {flag} = {_lit(reversal_flag)} THEN abs({amount}) <= abs({total}) "
                         f"ELSE {amount} <= {total} END")


def _regions_recognised(ctx, column_A, local_codes_A, column_B, local_codes_B, other_province_prefixes):
    a, b = _col(column_A), _col(column_B)
    a_local, b_local = _in(a, local_codes_A), _in(b, local_codes_B)
    a_ok = f"({a_local} OR {_in(f'left({a}, 2)', other_province_prefixes)})"
    b_ok = f"({b_local} OR {_in(f'left({b}, 2)', other_province_prefixes)})"
    return _fails_unless(f"{a_ok} AND {b_ok} AND ({a_local} OR {b_local})")


def _matter_applies(ctx, column_A, column_B, applicable_matters):
    """Lookup as in parameters.applicable_matters: the code, its first two
    characters, else "" (general rows); keys sharing a matter set share a branch."""
    region, matter = _col(column_A), _col(column_B)
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, matters in applicable_matters.items():
        if key:
            groups.setdefault(tuple(matters), []).append(key)
    branches = [f"WHEN {_in(probe, keys)} THEN {_in(matter, ms)}"
                for probe in (region, f"left({region}, 2)") for ms, keys in groups.items()]
    general = _in(matter, applicable_matters.get("", []))
    return (f"{region} IS NULL OR {matter} IS NULL OR "
            f"NOT (CASE {' '.join(branches)} ELSE {general} END)")


TRANSLATORS = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_match_regex": _match_regex,
    "expect_column_value_lengths_to_be_between": _lengths_between,
    "expect_column_values_to_be_between": _values_between,
    "expect_column_pair_values_a_to_be_greater_than_b": _a_greater_than_b,
    "expect_resident_id_to_be_valid": _resident_id,
    "expect_gender_to_match_resident_id": _gender_matches_id,
    "expect_birth_date_to_match_resident_id": _birth_date_matches_id,
    "expect_column_values_to_be_person_name": _person_name,
    "expect_column_pair_values_b_to_be_filled_when_a_in_set": _filled_when,
    "expect_column_pair_values_b_to_be_in_set_when_a_in_set": _in_set_when,
    "expect_column_pair_values_b_to_match_regex_when_a_category_in_set": _regex_when_category,
    "expect_column_pair_values_b_to_be_present_iff_a_in_set": _present_iff,
    "expect_no_concurrent_enrolment": _concurrent_enrolment,
    "expect_amount_signs_to_match_settlement_direction": _signs,
    "expect_multicolumn_values_to_balance": _balance,
    "expect_amount_not_to_exceed_total": _not_exceed_total,
    "expect_column_pair_regions_to_be_recognised": _regions_recognised,
    "expect_matter_to_apply_in_region": _matter_applies,
}


# -- suites -> SQL ------------------------------------------------------------


def bind(value, parameters: dict):
    """Replace ``{"$PARAMETER": name}`` by the parameter's value."""
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        name = value["$PARAMETER"]
        if name not in parameters:
            raise KeyError(f"suite parameter {name!r} has no value")
        return parameters[name]
    return value


def expectation_sql(exp: dict, parameters: dict, ctx: Context | None = None) -> str:
    """The failure condition of one expectation configuration."""
    try:
        translate = TRANSLATORS[exp["type"]]
    except KeyError:
        raise ValueError(f"no SQL translation for expectation type {exp['type']!r}") from None
    kwargs = {k: bind(v, parameters) for k, v in exp["kwargs"].items()}
    try:
        return translate(ctx or Context(_EVALUATED), **kwargs)
    except TypeError as exc:  # a kwarg the translation does not implement (mostly, row_condition, ...)
        raise ValueError(f"{exp['type']} ({exp['meta']['rule_id']}): {exc}") from exc


_EVALUATED = "_evaluated"  # CTE: the relation plus derived columns


def verdict_sql(stream: str, ref, relation: str, only: Collection[str] | None = None) -> str:
    """SELECT every column of ``relation`` (a table or view holding the
    stream's contract columns) plus one BOOLEAN column per rule, named by
    rule_id, TRUE = the record fails the rule, never NULL, in catalogue order.
    Cross-record rules (E09) are evaluated over the whole relation.
    ``only``: the rules to evaluate (default all) — e.g. record-level rules
    once over every version, the cross-record rule per snapshot."""
    parameters, ctx = suite_parameters(ref), Context(_EVALUATED)
    parts: dict[str, list[str]] = {r.rule_id: [] for r in rules(stream)
                                   if only is None or r.rule_id in only}
    for exp in suite(stream)["expectations"]:
        if exp["meta"]["rule_id"] in parts:
            parts[exp["meta"]["rule_id"]].append(expectation_sql(exp, parameters, ctx))
    verdicts = ",\n  ".join(f"coalesce({' OR '.join(f'({p})' for p in ps)}, FALSE) AS {_col(rid)}"
                            for rid, ps in parts.items())
    helpers = [d.name for d in DERIVED[stream]] + list(ctx.shared.values())
    exclude = f" EXCLUDE ({', '.join(map(_col, helpers))})" if helpers else ""
    # one layer per shared column: referenced by name, it is computed once (a column alias
    # in the same SELECT would be inlined at every use)
    layers, source = [f"{_EVALUATED} AS ({with_derived_sql(stream, relation)})"], _EVALUATED
    for sql, name in ctx.shared.items():
        layers.append(f"{name} AS (SELECT *, {sql} AS {_col(name)} FROM {source})")
        source = name
    with_clause = ",\n".join(layers)
    return f"WITH {with_clause}\nSELECT *{exclude},\n  {verdicts}\nFROM {source}"
