"""The members of indicator_breakdown as dimension rows: dim_institution
and dim_matter (WAREHOUSE.md) from the reference, plus a row for every code
seen in the data that the reference lacks (``in_reference`` false), so
every member of a breakdown, and every institution of a quality failure,
resolves to a name."""
from __future__ import annotations

import re

import duckdb

from reference import Reference
from transforms.indicators.components import NO_MEMBER

#: H/P, the 6-digit region code, a serial (DATA_CONTRACT.md fixmedins_code).
_CODE = re.compile(r"^([HP])(\d{6})\d{5}$")


#: stream -> (dimension, member column) of the streams whose records name members.
MEMBER_COLUMNS = {"settlement": ("institution", "fixmedins_code"),
                  "settlement_list": ("institution", "fixmedins_code"),
                  "filing": ("matter", "matter_code")}


def seen_codes(con: duckdb.DuckDBPyConnection, streams=tuple(MEMBER_COLUMNS)) -> dict[str, list[str]]:
    """Distinct fixmedins_code / matter_code of the accepted records of
    ``streams`` (nulls as NO_MEMBER, the breakdown's member for them)."""
    out: dict[str, set] = {"institution": set(), "matter": set()}
    for stream in streams:
        if stream in MEMBER_COLUMNS:
            dimension, column = MEMBER_COLUMNS[stream]
            out[dimension] |= {r[0] if r[0] is not None else NO_MEMBER
                               for r in con.sql(f"SELECT DISTINCT {column} FROM {stream}_accepted").fetchall()}
    return {k: sorted(v) for k, v in out.items()}


def _pooling(ref: Reference, region_code: str | None) -> str | None:
    r = ref.regions.get(region_code or "")
    if r is None:
        return None
    return r.pooling_code or (r.code if r.level == "city" else None)


def institution_rows(ref: Reference, seen: list[str] = ()) -> list[dict]:
    rows = {}
    for i in ref.institutions:
        rows[i["fixmedins_code"]] = {
            "fixmedins_code": i["fixmedins_code"], "name": i["name"], "level": i.get("grade") or None,
            "type": i["kind"], "region_code": i["admdvs"], "pooling_code": _pooling(ref, i["admdvs"]),
            "in_reference": True}
    for code in seen:
        if code in rows:
            continue
        m = _CODE.match(code)
        region = m.group(2) if m and m.group(2) in ref.regions else None
        name = "(no fixmedins_code)" if code == NO_MEMBER else f"{code} (not in institutions.csv)"
        rows[code] = {"fixmedins_code": code, "name": name, "level": None,
                      "type": m.group(1) if m else None, "region_code": region,
                      "pooling_code": _pooling(ref, region), "in_reference": False}
    return [rows[k] for k in sorted(rows)]


def matter_rows(ref: Reference, seen: list[str] = ()) -> list[dict]:
    rows = {}
    # The province-wide row's name first (rows without region_code), else any.
    for m in sorted(ref.matters, key=lambda m: bool(m.get("region_code"))):
        rows.setdefault(m["matter_code"], {"matter_code": m["matter_code"], "name": m["name"],
                                           "in_reference": True})
    for code in seen:
        if code not in rows:
            name = "(no matter_code)" if code == NO_MEMBER else f"{code} (not in matters.csv)"
            rows[code] = {"matter_code": code, "name": name, "in_reference": False}
    return [rows[k] for k in sorted(rows)]
